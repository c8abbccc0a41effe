// Code objects, decoded once per address: names, first line, line table and,
// on demand, the names of their local variables.
#pragma once

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
    StringId filename = 0;
    StringId name = 0;
    StringId qualname = 0;  // the plain name before 3.11
    int firstLine = 0;
    uint64_t bytecodeStart = 0;  // 3.11+: address of the first instruction
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
    // The same with its local variable names loaded.
    const CodeInfo* withLocals(uint64_t code);

    StringTable& strings() { return strings_; }
    size_t size() const { return codes_.size(); }

  private:
    std::unique_ptr<CodeInfo> load(uint64_t code);
    void loadLocals(uint64_t code, CodeInfo& info);
    void appendNames(uint64_t tuple, LocalKind kind, std::vector<LocalVariable>& out);
    StringId readName(uint64_t codeField, uint64_t code);

    ObjectReader& objects_;
    StringTable& strings_;
    std::unordered_map<uint64_t, std::unique_ptr<CodeInfo>> codes_;
};

}  // namespace vigil
