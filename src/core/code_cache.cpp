#include "core/code_cache.h"

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

}  // namespace

const CodeInfo* CodeCache::get(uint64_t code) {
    auto found = codes_.find(code);
    if (found != codes_.end()) return found->second.get();
    auto info = load(code);
    if (!info) return nullptr;
    return codes_.emplace(code, std::move(info)).first->second.get();
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

std::unique_ptr<CodeInfo> CodeCache::load(uint64_t code) {
    if (objects_.kindOf(code) != TypeKind::kCode) return nullptr;
    const PyLayout& layout = objects_.layout();
    auto info = std::make_unique<CodeInfo>();
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
    bool truncated = false;
    auto bytes = objects_.readBytes(table, kMaxLineTable, &truncated);
    if (bytes) {
        auto data = reinterpret_cast<const uint8_t*>(bytes->data());
        info->lines = LineTable::decode(layout.lineTableFormat(), firstLine,
                                        std::span<const uint8_t>(data, bytes->size()));
    }
    return info;
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
