#include "core/code_cache.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace vigil {
namespace {

// Kinds bits of co_localspluskinds, 3.11+.
constexpr uint8_t kCoFastCell = 0x40;
constexpr uint8_t kCoFastFree = 0x80;

// Line tables larger than this are not real; reading stops rather than
// copying garbage sizes out of a torn object.
constexpr size_t kMaxLineTable = 1 << 22;
constexpr size_t kMaxNameLength = 1024;
constexpr int64_t kMaxLocals = 1 << 16;
// Above any reference count a live code object has (immortal ones: 2^32 - 1
// on 3.12+, 999999999 for 3.11's deep-frozen code), below any address.
constexpr uint64_t kMaxPlausibleRefcount = uint64_t{1} << 40;

}  // namespace

const CodeInfo* CodeCache::get(uint64_t code) {
    RecentCode& recent = recent_[(code >> 4) % recent_.size()];
    CodeInfo* known = recent.code == code ? recent.info : find(code);
    if (known) {
        CodeInfo& info = *known;
        recent = {code, known};
        if (nowNs_ - info.verifiedNs > kVerifyEveryNs) queueVerification(code, info);
        return &info;
    }
    auto info = load(code);
    if (!info) return nullptr;
    return codes_.emplace(code, std::move(info)).first->second.get();
}

void CodeCache::suspect(uint64_t code) {
    if (CodeInfo* info = find(code)) queueVerification(code, *info);
}

void CodeCache::queueVerification(uint64_t code, CodeInfo& info) {
    if (info.pendingVerification) return;
    info.pendingVerification = true;
    pending_.push_back(code);
}

CodeInfo* CodeCache::find(uint64_t code) {
    auto found = codes_.find(code);
    return found != codes_.end() ? found->second.get() : nullptr;
}

const CodeInfo* CodeCache::withLocals(uint64_t code) {
    const CodeInfo* info = get(code);
    if (info && !info->localsLoaded) loadLocals(code, const_cast<CodeInfo&>(*info));
    return info;
}

StringId CodeCache::readName(uint64_t codeField, uint64_t code) {
    uint64_t object = 0;
    if (!objects_.memory().readPointer(code + codeField, object)) return strings_.intern("?");
    auto text = objects_.readStr(object, kMaxNameLength);
    return strings_.intern(text ? *text : "?");
}

size_t CodeCache::fingerprintBytes() const {
    const PyLayout& layout = objects_.layout();
    Offset end =
        std::max({layout.object.ob_type, layout.code.filename, layout.code.name,
                  layout.code.firstlineno, layout.code.stacksize, layout.code.nlocalsplus});
    return static_cast<size_t>(end) + 8;
}

CodeInfo::Fingerprint CodeCache::fingerprintFrom(const uint8_t* bytes) const {
    const PyLayout& layout = objects_.layout();
    CodeInfo::Fingerprint fingerprint;
    std::memcpy(&fingerprint.type, bytes + layout.object.ob_type, 8);
    std::memcpy(&fingerprint.filename, bytes + layout.code.filename, 8);
    std::memcpy(&fingerprint.name, bytes + layout.code.name, 8);
    std::memcpy(&fingerprint.firstLine, bytes + layout.code.firstlineno, 4);
    std::memcpy(&fingerprint.stackSize, bytes + layout.code.stacksize, 4);
    if (layout.code.nlocalsplus != kNone)
        std::memcpy(&fingerprint.localsPlus, bytes + layout.code.nlocalsplus, 4);
    return fingerprint;
}

bool CodeCache::looksAlive(const uint8_t* bytes) const {
    // A freed object keeps its fields until reused, but its first word
    // becomes the allocator's free-list link, or null (pymalloc_free() in
    // https://github.com/python/cpython/blob/v3.11.7/Objects/obmalloc.c):
    // a code object freed while it was read must not lend its stale name
    // pointers, whose strings may hold anything by then.
    uint64_t refcount = 0;
    std::memcpy(&refcount, bytes + objects_.layout().object.ob_type - 8, 8);
    return refcount > 0 && refcount < kMaxPlausibleRefcount;
}

bool CodeCache::readFingerprint(uint64_t code, CodeInfo::Fingerprint& out) {
    std::vector<uint8_t> bytes(fingerprintBytes());
    if (!objects_.memory().read(code, bytes.data(), bytes.size()) || !looksAlive(bytes.data()))
        return false;
    out = fingerprintFrom(bytes.data());
    return true;
}

void CodeCache::verifyPending() {
    if (pending_.empty()) return;
    size_t size = fingerprintBytes();
    verifyBuffer_.resize(pending_.size() * size);
    verifyRequests_.clear();
    for (size_t i = 0; i < pending_.size(); ++i) {
        verifyRequests_.push_back({pending_[i], verifyBuffer_.data() + i * size, size});
    }
    size_t read = objects_.memory().readMany(verifyRequests_);
    for (size_t i = 0; i < pending_.size(); ++i) {
        auto found = codes_.find(pending_[i]);
        if (found == codes_.end()) continue;
        CodeInfo& info = *found->second;
        info.pendingVerification = false;
        const uint8_t* bytes = verifyBuffer_.data() + i * size;
        if (i < read && looksAlive(bytes) && fingerprintFrom(bytes) == info.fingerprint) {
            info.verifiedNs = nowNs_;
            continue;
        }
        if (i >= read) continue;  // not read this time (the batch stopped early): check later
        // Another object lives here now: decode it afresh, or forget it (a
        // later load gets a generation never used before either way).
        recent_[(pending_[i] >> 4) % recent_.size()] = {};
        auto fresh = load(pending_[i]);
        if (!fresh) {
            codes_.erase(found);
            continue;
        }
        found->second = std::move(fresh);
    }
    pending_.clear();
}

std::unique_ptr<CodeInfo> CodeCache::load(uint64_t code) {
    auto info = std::make_unique<CodeInfo>();
    if (!readFingerprint(code, info->fingerprint) || objects_.kindOf(code) != TypeKind::kCode)
        return nullptr;
    info->verifiedNs = nowNs_;
    info->generation = ++generations_;
    const PyLayout& layout = objects_.layout();
    int32_t firstLine = 0;
    uint64_t table = 0;
    if (!objects_.memory().readValue(code + layout.code.firstlineno, firstLine) ||
        !objects_.memory().readPointer(code + layout.code.linetable, table)) {
        return nullptr;
    }
    info->firstLine = firstLine;
    info->filename = readName(layout.code.filename, code);
    info->name = readName(layout.code.name, code);
    info->qualname =
        layout.code.qualname != kNone ? readName(layout.code.qualname, code) : info->name;
    if (layout.code.code_adaptive != kNone) info->bytecodeStart = code + layout.code.code_adaptive;
    if (layout.code.nlocalsplus != kNone) info->frameBytes = frameBytesOf(info->fingerprint);
    bool truncated = false;
    auto bytes = objects_.readBytes(table, kMaxLineTable, &truncated);
    if (bytes) {
        auto data = reinterpret_cast<const uint8_t*>(bytes->data());
        info->lines = LineTable::decode(layout.lineTableFormat(), firstLine,
                                        std::span<const uint8_t>(data, bytes->size()));
    }
    return info;
}

uint64_t CodeCache::frameBytesOf(const CodeInfo::Fingerprint& fingerprint) const {
    // As the interpreter sizes a frame when it pushes one: co_framesize on
    // 3.12+, the same sum spelt out on 3.11 (_PyEvalFramePushAndInit in
    // https://github.com/python/cpython/blob/v3.11.7/Python/ceval.c).
    if (fingerprint.localsPlus < 0 || fingerprint.stackSize < 0) return 0;
    uint64_t words = static_cast<uint64_t>(fingerprint.localsPlus) + fingerprint.stackSize;
    return static_cast<uint64_t>(objects_.layout().frame.size) + 8 * words;
}

void CodeCache::appendNames(uint64_t tuple, LocalKind kind, std::vector<LocalVariable>& out) {
    auto size = objects_.readSize(tuple);
    if (!size || *size > kMaxLocals) return;
    for (int64_t i = 0; i < *size; ++i) {
        auto item = objects_.tupleItem(tuple, i);
        auto text = item ? objects_.readStr(*item, kMaxNameLength) : std::nullopt;
        out.push_back({strings_.intern(text ? *text : "?"), kind, false});
    }
}

void CodeCache::loadLocals(uint64_t code, CodeInfo& info) {
    const PyLayout& layout = objects_.layout();
    MemorySource& memory = objects_.memory();
    info.localsLoaded = true;
    info.locals.clear();
    int32_t argCount = 0;
    memory.readValue(code + layout.code.argcount, argCount);
    if (layout.code.localsplusnames != kNone) {
        uint64_t names = 0, kinds = 0;
        if (!memory.readPointer(code + layout.code.localsplusnames, names) ||
            !memory.readPointer(code + layout.code.localspluskinds, kinds)) {
            return;
        }
        appendNames(names, LocalKind::kPlain, info.locals);
        bool truncated = false;
        auto kindBytes = objects_.readBytes(kinds, info.locals.size(), &truncated);
        for (size_t i = 0; kindBytes && i < kindBytes->size() && i < info.locals.size(); ++i) {
            uint8_t kind = static_cast<uint8_t>((*kindBytes)[i]);
            if (kind & kCoFastFree)
                info.locals[i].kind = LocalKind::kFree;
            else if (kind & kCoFastCell)
                info.locals[i].kind = LocalKind::kCell;
        }
    } else {
        // 3.8-3.10: f_localsplus holds co_varnames, then cells, then free variables.
        uint64_t varnames = 0, cellvars = 0, freevars = 0;
        memory.readPointer(code + layout.code.varnames, varnames);
        memory.readPointer(code + layout.code.cellvars, cellvars);
        memory.readPointer(code + layout.code.freevars, freevars);
        appendNames(varnames, LocalKind::kPlain, info.locals);
        appendNames(cellvars, LocalKind::kCell, info.locals);
        appendNames(freevars, LocalKind::kFree, info.locals);
    }
    for (int32_t i = 0; i < argCount && i < static_cast<int32_t>(info.locals.size()); ++i) {
        info.locals[i].argument = true;
    }
}

}  // namespace vigil
