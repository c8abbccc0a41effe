// Code objects, decoded once per address: names, first line, line table and,
// on demand, the names of their local variables.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/linetable.h"
#include "core/objects.h"
#include "core/strings.h"

namespace vigil {

// How a local variable is stored in the frame (CO_FAST_* in
// https://github.com/python/cpython/blob/v3.11.7/Include/internal/pycore_code.h).
enum class LocalKind : uint8_t { kPlain, kCell, kFree };

struct LocalVariable {
    StringId name = 0;
    LocalKind kind = LocalKind::kPlain;
    bool argument = false;
};

struct CodeInfo {
    // What the object at this address looked like when decoded: a code object
    // can be freed and another allocated at its address, and these tell.
    struct Fingerprint {
        uint64_t type = 0;
        uint64_t filename = 0;  // pointers to the name objects
        uint64_t name = 0;
        int32_t firstLine = 0;
        int32_t stackSize = 0;   // these two size its frames (3.11+): a walk
        int32_t localsPlus = 0;  // of the data stack relies on them
        bool operator==(const Fingerprint&) const = default;
    } fingerprint;
    uint32_t generation = 0;  // unique per decoding: another object at the address gets another one
    int64_t verifiedNs = 0;
    bool pendingVerification = false;

    StringId filename = 0;
    StringId name = 0;
    StringId qualname = 0;  // the plain name before 3.11
    int firstLine = 0;
    uint64_t bytecodeStart = 0;  // 3.11+: address of the first instruction
    // 3.11+: the bytes its frames take on the data stack (header, locals and
    // value stack), 0 if unknown.
    uint64_t frameBytes = 0;
    LineTable lines;
    bool localsLoaded = false;
    std::vector<LocalVariable> locals;  // in frame order (localsplus)

    int lineAt(int64_t byteOffset) const {
        if (byteOffset < 0) return firstLine;  // not started yet (f_lasti == -1)
        int line = lines.lineAt(static_cast<uint32_t>(byteOffset));
        return line > 0 ? line : firstLine;
    }
};

class CodeCache {
  public:
    CodeCache(ObjectReader& objects, StringTable& strings) : objects_(objects), strings_(strings) {}

    // The decoded code object at this address, nullptr if it is not one.
    const CodeInfo* get(uint64_t code);

    // Long-running users (the sampler) tell the time each round; entries
    // used then and not checked for kVerifyEveryNs are queued, and
    // verifyPending() checks them all in one batched read, decoding again any
    // whose address now holds another code object. A freed code object's
    // name can so be shown for another at most kVerifyEveryNs.
    void setClock(int64_t nowNs) { nowNs_ = nowNs; }
    void verifyPending();
    // Queues this code for the next verifyPending(), as if it were due: a
    // walk found it does not fit where it was seen.
    void suspect(uint64_t code);
    static constexpr int64_t kVerifyEveryNs = 20'000'000;
    // The same with its local variable names loaded.
    const CodeInfo* withLocals(uint64_t code);

    StringTable& strings() { return strings_; }
    size_t size() const { return codes_.size(); }

  private:
    CodeInfo* find(uint64_t code);
    std::unique_ptr<CodeInfo> load(uint64_t code);
    uint64_t frameBytesOf(const CodeInfo::Fingerprint& fingerprint) const;
    void queueVerification(uint64_t code, CodeInfo& info);
    void loadLocals(uint64_t code, CodeInfo& info);
    void appendNames(uint64_t tuple, LocalKind kind, std::vector<LocalVariable>& out);
    StringId readName(uint64_t codeField, uint64_t code);
    bool looksAlive(const uint8_t* bytes) const;
    bool readFingerprint(uint64_t code, CodeInfo::Fingerprint& out);
    CodeInfo::Fingerprint fingerprintFrom(const uint8_t* bytes) const;
    size_t fingerprintBytes() const;

    ObjectReader& objects_;
    StringTable& strings_;
    std::unordered_map<uint64_t, std::unique_ptr<CodeInfo>> codes_;
    // The codes used lately, by address (objects are 16-byte aligned): a
    // walk looks up every frame's code, mostly the same ones sample after
    // sample, and this spares the hash table.
    struct RecentCode {
        uint64_t code = 0;
        CodeInfo* info = nullptr;
    };
    std::array<RecentCode, 512> recent_{};
    int64_t nowNs_ = 0;
    uint32_t generations_ =
        0;  // every load gets a new one, so caches keyed by it never mix two objects
    std::vector<uint64_t> pending_;
    std::vector<uint8_t> verifyBuffer_;
    std::vector<ReadRequest> verifyRequests_;
};

}  // namespace vigil
