// Reading Python objects out of a target's memory: strings, numbers,
// containers, dictionaries and instance attributes, all bounded and safe
// against torn or garbage memory (every read is checked, every loop capped).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/layout.h"
#include "core/memory.h"

namespace vigil {

enum class TypeKind {
    kOther,
    kStr,
    kBytes,
    kInt,
    kBool,
    kFloat,
    kNone,
    kTuple,
    kList,
    kDict,
    kCode,
    kCell,
    kModule,
};

struct RenderLimits {
    size_t maxString = 80;  // characters of a string or bytes shown before "..."
    size_t maxItems = 6;    // items of a container shown before "..."
    int maxDepth = 2;       // nesting of containers rendered
};

class ObjectReader {
  public:
    ObjectReader(MemorySource& memory, const PyLayout& layout) : memory_(memory), layout_(layout) {}

    // The type object of obj, 0 when unreadable.
    uint64_t typeOf(uint64_t object);
    // What kind of built-in object obj is, from its type's flags and name;
    // cached per type address.
    TypeKind kindOf(uint64_t object);
    std::string typeName(uint64_t object);

    // A str object as UTF-8, at most maxChars code points; nullopt if obj is
    // not a readable str. truncated is set when the string was longer.
    std::optional<std::string> readStr(uint64_t object, size_t maxChars = 4096,
                                       bool* truncated = nullptr);
    std::optional<std::string> readBytes(uint64_t object, size_t maxBytes, bool* truncated);
    // An int in decimal (big ints too, up to about a hundred digits).
    std::optional<std::string> readInt(uint64_t object);
    std::optional<int64_t> readSmallInt(uint64_t object);
    // Number of items of a tuple, list or bytes (ob_size).
    std::optional<int64_t> readSize(uint64_t object);
    std::optional<uint64_t> tupleItem(uint64_t tuple, int64_t index);

    // Calls visit(key, value) for each item of a dict, in insertion order;
    // stops early when visit returns false. False if the dict is unreadable.
    using ItemVisitor = std::function<bool(uint64_t key, uint64_t value)>;
    bool forEachDictItem(uint64_t dict, const ItemVisitor& visit, size_t maxItems = 100000);
    // The value stored under a str key, 0 when absent or unreadable.
    uint64_t dictLookup(uint64_t dict, std::string_view key);
    // An attribute from an instance's __dict__ (or its inline/split values).
    uint64_t instanceAttribute(uint64_t object, std::string_view name);
    // The __dict__ of a module object.
    uint64_t moduleDict(uint64_t module);
    // The content of a cell object.
    uint64_t cellContents(uint64_t cell);

    // A safe, bounded repr: values of simple built-in types rendered, everything
    // else as <type at 0x...>.
    std::string render(uint64_t object, const RenderLimits& limits = {}, int depth = 0);

    const PyLayout& layout() const { return layout_; }
    MemorySource& memory() { return memory_; }

  private:
    struct DictView;
    bool openDict(uint64_t dict, DictView& view);
    bool forEachKeysEntry(const DictView& view, const ItemVisitor& visit, size_t maxItems);
    uint64_t splitValuesAttribute(uint64_t type, uint64_t values, std::string_view name);
    TypeKind classify(uint64_t type);
    std::string renderSequence(uint64_t object, TypeKind kind, const RenderLimits& limits,
                               int depth);
    std::string renderDict(uint64_t object, const RenderLimits& limits, int depth);

    MemorySource& memory_;
    const PyLayout& layout_;
    std::unordered_map<uint64_t, TypeKind> kinds_;
};

// True for names whose values must never be shown (password, token, secret,
// authorization, cookie, api keys...): locals and dict keys alike.
bool looksSecret(std::string_view name);
inline constexpr std::string_view kMasked = "'***'";

// Escapes a string for display inside quotes.
// With escapeNonAscii (bytes objects), bytes from 0x80 up are escaped too.
std::string quoteForDisplay(std::string_view text, char quote = '\'', bool escapeNonAscii = false);

}  // namespace vigil
