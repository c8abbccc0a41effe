#include "core/objects.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace vigil {
namespace {

// Type flags identifying built-in layouts, subclasses included
// (https://github.com/python/cpython/blob/v3.12.1/Include/object.h).
constexpr uint64_t kTpFlagsInlineValues = 1ull << 2;  // 3.13+
constexpr uint64_t kTpFlagsManagedDict = 1ull << 4;   // 3.11+
constexpr uint64_t kTpFlagsLongSubclass = 1ull << 24;
constexpr uint64_t kTpFlagsListSubclass = 1ull << 25;
constexpr uint64_t kTpFlagsTupleSubclass = 1ull << 26;
constexpr uint64_t kTpFlagsBytesSubclass = 1ull << 27;
constexpr uint64_t kTpFlagsUnicodeSubclass = 1ull << 28;
constexpr uint64_t kTpFlagsDictSubclass = 1ull << 29;

// Where 3.11+ keeps an instance's managed __dict__ (and, in 3.11, its split
// values): words before the object header. See _PyObject_ManagedDictPointer in
// https://github.com/python/cpython/blob/v3.11.7/Include/internal/pycore_object.h
constexpr int64_t kManagedDictOffset = -3 * 8;
constexpr int64_t kManagedValuesOffset311 = -4 * 8;

constexpr int64_t kMaxStrLength = int64_t{1} << 40;
constexpr int64_t kMaxDictEntries = int64_t{1} << 26;
constexpr int kPyLongShift = 30;
constexpr int kMaxIntDigits = 12;

void appendUtf8(std::string& out, uint32_t codePoint) {
    if (codePoint < 0x80) {
        out += static_cast<char>(codePoint);
    } else if (codePoint < 0x800) {
        out += static_cast<char>(0xC0 | (codePoint >> 6));
        out += static_cast<char>(0x80 | (codePoint & 0x3F));
    } else if (codePoint < 0x10000) {
        out += static_cast<char>(0xE0 | (codePoint >> 12));
        out += static_cast<char>(0x80 | ((codePoint >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (codePoint & 0x3F));
    } else if (codePoint < 0x110000) {
        out += static_cast<char>(0xF0 | (codePoint >> 18));
        out += static_cast<char>(0x80 | ((codePoint >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((codePoint >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (codePoint & 0x3F));
    } else {
        out += "\xEF\xBF\xBD";  // U+FFFD for garbage
    }
}

// Base 2^30 little-endian digits to decimal.
std::string digitsToDecimal(const std::vector<uint32_t>& digits, bool negative) {
    std::vector<uint32_t> decimal;  // base 1e9, little endian
    for (auto digit = digits.rbegin(); digit != digits.rend(); ++digit) {
        uint64_t carry = *digit;
        for (uint32_t& part : decimal) {
            uint64_t value = (uint64_t{part} << kPyLongShift) + carry;
            part = static_cast<uint32_t>(value % 1000000000);
            carry = value / 1000000000;
        }
        while (carry) {
            decimal.push_back(static_cast<uint32_t>(carry % 1000000000));
            carry /= 1000000000;
        }
    }
    if (decimal.empty()) return "0";
    std::string text = negative ? "-" : "";
    text += fmt::format("{}", decimal.back());
    for (auto part = decimal.rbegin() + 1; part != decimal.rend(); ++part) {
        text += fmt::format("{:09}", *part);
    }
    return text;
}

}  // namespace

bool looksSecret(std::string_view name) {
    static constexpr std::string_view kSecretWords[] = {
        "password", "passwd", "secret",      "token",      "authorization", "cookie",
        "api_key",  "apikey", "private_key", "credential", "session_key",
    };
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return std::any_of(
        std::begin(kSecretWords), std::end(kSecretWords),
        [&](std::string_view word) { return lower.find(word) != std::string::npos; });
}

std::string quoteForDisplay(std::string_view text, char quote, bool escapeNonAscii) {
    std::string out(1, quote);
    for (unsigned char c : text) {
        if (c == '\\' || c == static_cast<unsigned char>(quote)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7F || (escapeNonAscii && c >= 0x80)) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    out += quote;
    return out;
}

struct ObjectReader::DictView {
    uint64_t keys = 0;
    uint64_t values = 0;  // start of the split values array, 0 for a combined table
    int64_t entryCount = 0;
    uint64_t entries = 0;
    size_t entrySize = 0;
    size_t keyOffset = 0;
};

uint64_t ObjectReader::typeOf(uint64_t object) {
    uint64_t type = 0;
    if (object == 0 || !memory_.readPointer(object + layout_.object.ob_type, type)) return 0;
    return type;
}

TypeKind ObjectReader::kindOf(uint64_t object) {
    uint64_t type = typeOf(object);
    if (type == 0) return TypeKind::kOther;
    auto cached = kinds_.find(type);
    if (cached != kinds_.end()) return cached->second;
    TypeKind kind = classify(type);
    // Only cache types we could read: a torn read must not poison the cache.
    if (kind != TypeKind::kOther || kinds_.size() < 4096) kinds_.emplace(type, kind);
    return kind;
}

TypeKind ObjectReader::classify(uint64_t type) {
    uint64_t flags = 0;
    uint64_t namePointer = 0;
    if (!memory_.readValue(type + layout_.type.tp_flags, flags) ||
        !memory_.readPointer(type + layout_.type.tp_name, namePointer)) {
        return TypeKind::kOther;
    }
    std::string name = memory_.readCString(namePointer, 32);
    if (flags & kTpFlagsUnicodeSubclass) return TypeKind::kStr;
    if (flags & kTpFlagsBytesSubclass) return TypeKind::kBytes;
    if (flags & kTpFlagsLongSubclass) return name == "bool" ? TypeKind::kBool : TypeKind::kInt;
    if (flags & kTpFlagsTupleSubclass) return TypeKind::kTuple;
    if (flags & kTpFlagsListSubclass) return TypeKind::kList;
    if (flags & kTpFlagsDictSubclass) return TypeKind::kDict;
    static const std::array<std::pair<std::string_view, TypeKind>, 5> byName = {{
        {"float", TypeKind::kFloat},
        {"NoneType", TypeKind::kNone},
        {"code", TypeKind::kCode},
        {"cell", TypeKind::kCell},
        {"module", TypeKind::kModule},
    }};
    for (const auto& [typeName, kind] : byName) {
        if (name == typeName) return kind;
    }
    return TypeKind::kOther;
}

std::string ObjectReader::typeName(uint64_t object) {
    uint64_t namePointer = 0;
    uint64_t type = typeOf(object);
    if (type == 0 || !memory_.readPointer(type + layout_.type.tp_name, namePointer)) return "?";
    std::string name = memory_.readCString(namePointer, 128);
    return name.empty() ? "?" : name;
}

std::optional<std::string> ObjectReader::readStr(uint64_t object, size_t maxChars,
                                                 bool* truncated) {
    uint32_t state = 0;
    int64_t length = 0;
    if (!memory_.readValue(object + layout_.unicode.state, state) ||
        !memory_.readValue(object + layout_.unicode.length, length) || length < 0 ||
        length > kMaxStrLength) {
        return std::nullopt;
    }
    // Bit fields of PyASCIIObject.state: interned:2, kind:3, compact:1, ascii:1.
    unsigned kind = (state >> 2) & 7;
    bool compact = (state >> 5) & 1;
    bool ascii = (state >> 6) & 1;
    if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;
    uint64_t data = 0;
    if (compact) {
        data = object + (ascii ? layout_.unicode.ascii_size : layout_.unicode.compact_size);
    } else if (!memory_.readPointer(object + layout_.unicode.compact_size, data) || data == 0) {
        return std::nullopt;
    }
    size_t count = std::min<size_t>(length, maxChars);
    if (truncated) *truncated = count < static_cast<size_t>(length);
    std::vector<uint8_t> raw(count * kind);
    if (count && !memory_.read(data, raw.data(), raw.size())) return std::nullopt;
    std::string text;
    text.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        uint32_t codePoint = 0;
        std::memcpy(&codePoint, raw.data() + i * kind, kind);
        appendUtf8(text, codePoint);
    }
    return text;
}

std::optional<int64_t> ObjectReader::readSize(uint64_t object) {
    int64_t size = 0;
    if (!memory_.readValue(object + layout_.object.ob_size, size) || size < 0) return std::nullopt;
    return size;
}

std::optional<std::string> ObjectReader::readBytes(uint64_t object, size_t maxBytes,
                                                   bool* truncated) {
    auto size = readSize(object);
    if (!size) return std::nullopt;
    size_t count = std::min<size_t>(*size, maxBytes);
    if (truncated) *truncated = count < static_cast<size_t>(*size);
    std::string bytes(count, '\0');
    if (count && !memory_.read(object + layout_.bytes.ob_sval, bytes.data(), count))
        return std::nullopt;
    return bytes;
}

std::optional<std::string> ObjectReader::readInt(uint64_t object) {
    int64_t ndigits = 0;
    bool negative = false;
    if (layout_.long_.lv_tag != kNone) {
        // 3.12+: lv_tag = ndigits << 3 | sign, sign 0 positive, 1 zero, 2 negative
        // (https://github.com/python/cpython/blob/v3.12.1/Include/cpython/longintrepr.h).
        uint64_t tag = 0;
        if (!memory_.readValue(object + layout_.long_.lv_tag, tag)) return std::nullopt;
        ndigits = static_cast<int64_t>(tag >> 3);
        negative = (tag & 3) == 2;
    } else {
        int64_t size = 0;
        if (!memory_.readValue(object + layout_.object.ob_size, size)) return std::nullopt;
        negative = size < 0;
        ndigits = negative ? -size : size;
    }
    if (ndigits < 0) return std::nullopt;  // torn: INT64_MIN has no magnitude
    if (ndigits > kMaxIntDigits) return fmt::format("<int of about {} digits>", ndigits * 9 + 1);
    std::vector<uint32_t> digits(ndigits);
    if (ndigits && !memory_.read(object + layout_.long_.ob_digit, digits.data(), ndigits * 4)) {
        return std::nullopt;
    }
    return digitsToDecimal(digits, negative);
}

std::optional<int64_t> ObjectReader::readSmallInt(uint64_t object) {
    auto text = readInt(object);
    int64_t value = 0;
    if (!text ||
        std::from_chars(text->data(), text->data() + text->size(), value).ec != std::errc()) {
        return std::nullopt;
    }
    return value;
}

std::optional<uint64_t> ObjectReader::tupleItem(uint64_t tuple, int64_t index) {
    uint64_t item = 0;
    if (!memory_.readPointer(tuple + layout_.tuple.ob_item + index * 8, item)) return std::nullopt;
    return item;
}

bool ObjectReader::openDict(uint64_t dict, DictView& view) {
    uint64_t values = 0;
    if (!memory_.readPointer(dict + layout_.dict.ma_keys, view.keys) || view.keys == 0 ||
        !memory_.readPointer(dict + layout_.dict.ma_values, values)) {
        return false;
    }
    std::array<uint8_t, 64> header{};
    if (layout_.dict.dk_indices > static_cast<Offset>(header.size()) ||
        !memory_.read(view.keys, header.data(), layout_.dict.dk_indices)) {
        return false;
    }
    std::memcpy(&view.entryCount, header.data() + layout_.dict.dk_nentries, 8);
    uint64_t indexBytes = 0;
    bool unicodeEntries = false;
    if (layout_.dict.dk_size != kNone) {
        // 3.8-3.10: index width follows the table size (DK_IXSIZE in Objects/dict-common.h).
        int64_t size = 0;
        std::memcpy(&size, header.data() + layout_.dict.dk_size, 8);
        if (size <= 0 || size > kMaxDictEntries * 2) return false;
        uint64_t width = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffll ? 4 : 8;
        indexBytes = size * width;
    } else {
        uint8_t log2IndexBytes = header[layout_.dict.dk_log2_index_bytes];
        if (log2IndexBytes > 40) return false;
        indexBytes = uint64_t{1} << log2IndexBytes;
        unicodeEntries = header[layout_.dict.dk_kind] != 0;  // DICT_KEYS_GENERAL is 0
    }
    if (view.entryCount < 0 || view.entryCount > kMaxDictEntries) return false;
    view.entries = view.keys + layout_.dict.dk_indices + indexBytes;
    view.entrySize = unicodeEntries ? 16 : 24;  // {key, value} or {hash, key, value}
    view.keyOffset = unicodeEntries ? 0 : 8;
    view.values = values == 0 ? 0 : values + std::max<Offset>(layout_.dict.values_values, 0);
    return true;
}

bool ObjectReader::forEachKeysEntry(const DictView& view, const ItemVisitor& visit,
                                    size_t maxItems) {
    size_t count = std::min<size_t>(view.entryCount, maxItems);
    std::vector<uint64_t> words(count * view.entrySize / 8);
    if (count && !memory_.read(view.entries, words.data(), words.size() * 8)) return false;
    std::vector<uint64_t> splitValues(view.values ? count : 0);
    if (view.values && count && !memory_.read(view.values, splitValues.data(), count * 8))
        return false;
    size_t stride = view.entrySize / 8;
    size_t keyIndex = view.keyOffset / 8;
    for (size_t i = 0; i < count; ++i) {
        uint64_t key = words[i * stride + keyIndex];
        uint64_t value = view.values ? splitValues[i] : words[i * stride + keyIndex + 1];
        if (key == 0 || value == 0) continue;  // a deleted or unused entry
        if (!visit(key, value)) break;
    }
    return true;
}

bool ObjectReader::forEachDictItem(uint64_t dict, const ItemVisitor& visit, size_t maxItems) {
    DictView view;
    return openDict(dict, view) && forEachKeysEntry(view, visit, maxItems);
}

uint64_t ObjectReader::dictLookup(uint64_t dict, std::string_view key) {
    uint64_t found = 0;
    forEachDictItem(dict, [&](uint64_t itemKey, uint64_t value) {
        auto text = readStr(itemKey, key.size() + 1);
        if (text && *text == key) {
            found = value;
            return false;
        }
        return true;
    });
    return found;
}

uint64_t ObjectReader::splitValuesAttribute(uint64_t type, uint64_t values, std::string_view name) {
    // A split table: the keys are shared by all instances of the type
    // (ht_cached_keys), the values belong to this instance.
    DictView view;
    std::array<uint8_t, 64> header{};
    if (!memory_.readPointer(type + layout_.type.ht_cached_keys, view.keys) || view.keys == 0 ||
        layout_.dict.dk_indices > static_cast<Offset>(header.size()) ||
        !memory_.read(view.keys, header.data(), layout_.dict.dk_indices)) {
        return 0;
    }
    std::memcpy(&view.entryCount, header.data() + layout_.dict.dk_nentries, 8);
    uint8_t log2IndexBytes = header[layout_.dict.dk_log2_index_bytes];
    if (view.entryCount < 0 || view.entryCount > 4096 || log2IndexBytes > 20) return 0;
    view.entries = view.keys + layout_.dict.dk_indices + (uint64_t{1} << log2IndexBytes);
    view.entrySize = 16;  // split keys are always unicode entries
    view.values = values + std::max<Offset>(layout_.dict.values_values, 0);
    uint64_t found = 0;
    forEachKeysEntry(
        view,
        [&](uint64_t key, uint64_t value) {
            auto text = readStr(key, name.size() + 1);
            if (text && *text == name) {
                found = value;
                return false;
            }
            return true;
        },
        4096);
    return found;
}

uint64_t ObjectReader::instanceAttribute(uint64_t object, std::string_view name) {
    uint64_t type = typeOf(object);
    uint64_t flags = 0;
    int64_t dictOffset = 0;
    if (type == 0 || !memory_.readValue(type + layout_.type.tp_flags, flags) ||
        !memory_.readValue(type + layout_.type.tp_dictoffset, dictOffset)) {
        return 0;
    }
    uint64_t dict = 0;
    if (layout_.version.atLeast(3, 11) && (flags & kTpFlagsManagedDict)) {
        uint64_t slot = 0;
        if (!memory_.readPointer(object + kManagedDictOffset, slot)) return 0;
        if (!layout_.version.atLeast(3, 12)) {
            if (slot) return dictLookup(slot, name);
            uint64_t values = 0;
            if (!memory_.readPointer(object + kManagedValuesOffset311, values) || !values) return 0;
            return splitValuesAttribute(type, values, name);
        }
        if (!layout_.version.atLeast(3, 13)) {
            // 3.12: a tagged pointer, values stored minus one (PyDictOrValues in
            // https://github.com/python/cpython/blob/v3.12.1/Include/internal/pycore_object.h).
            if (slot & 1) return splitValuesAttribute(type, slot + 1, name);
            return slot ? dictLookup(slot, name) : 0;
        }
        if (slot) return dictLookup(slot, name);
        int64_t basicSize = 0;
        if ((flags & kTpFlagsInlineValues) &&
            memory_.readValue(type + layout_.type.tp_basicsize, basicSize) && basicSize > 0) {
            // 3.13: the values live inline, right after the object's fixed part.
            return splitValuesAttribute(type, object + basicSize, name);
        }
        return 0;
    }
    if (dictOffset <= 0 || !memory_.readPointer(object + dictOffset, dict) || dict == 0) return 0;
    return dictLookup(dict, name);
}

uint64_t ObjectReader::moduleDict(uint64_t module) {
    uint64_t dict = 0;
    memory_.readPointer(module + layout_.module.md_dict, dict);
    return dict;
}

uint64_t ObjectReader::cellContents(uint64_t cell) {
    uint64_t contents = 0;
    memory_.readPointer(cell + layout_.cell.ob_ref, contents);
    return contents;
}

std::string ObjectReader::render(uint64_t object, const RenderLimits& limits, int depth) {
    if (object == 0) return "<unset>";
    TypeKind kind = kindOf(object);
    auto opaque = [&] { return fmt::format("<{} at {:#x}>", typeName(object), object); };
    bool truncated = false;
    switch (kind) {
        case TypeKind::kNone:
            return "None";
        case TypeKind::kBool: {
            auto value = readSmallInt(object);
            return value ? (*value ? "True" : "False") : opaque();
        }
        case TypeKind::kInt: {
            auto value = readInt(object);
            return value ? *value : opaque();
        }
        case TypeKind::kFloat: {
            double value = 0;
            if (!memory_.readValue(object + layout_.float_.ob_fval, value)) return opaque();
            std::string text = fmt::format("{}", value);
            if (std::isfinite(value) && text.find_first_of(".e") == std::string::npos) text += ".0";
            return text;
        }
        case TypeKind::kStr: {
            auto text = readStr(object, limits.maxString, &truncated);
            return text ? quoteForDisplay(*text) + (truncated ? "..." : "") : opaque();
        }
        case TypeKind::kBytes: {
            auto bytes = readBytes(object, limits.maxString, &truncated);
            return bytes ? "b" + quoteForDisplay(*bytes, '\'', true) + (truncated ? "..." : "")
                         : opaque();
        }
        case TypeKind::kTuple:
        case TypeKind::kList:
            return depth < limits.maxDepth ? renderSequence(object, kind, limits, depth) : opaque();
        case TypeKind::kDict:
            return depth < limits.maxDepth ? renderDict(object, limits, depth) : opaque();
        default:
            return opaque();
    }
}

std::string ObjectReader::renderSequence(uint64_t object, TypeKind kind, const RenderLimits& limits,
                                         int depth) {
    auto size = readSize(object);
    uint64_t items = object + layout_.tuple.ob_item;
    if (kind == TypeKind::kList && !memory_.readPointer(object + layout_.list.ob_item, items)) {
        size.reset();
    }
    if (!size) return fmt::format("<{} at {:#x}>", typeName(object), object);
    size_t shown = std::min<size_t>(*size, limits.maxItems);
    std::vector<uint64_t> pointers(shown);
    if (shown && !memory_.read(items, pointers.data(), shown * 8)) {
        return fmt::format("<{} at {:#x}>", typeName(object), object);
    }
    std::string text = kind == TypeKind::kList ? "[" : "(";
    for (size_t i = 0; i < shown; ++i) {
        if (i) text += ", ";
        text += render(pointers[i], limits, depth + 1);
    }
    if (shown < static_cast<size_t>(*size)) text += fmt::format(", ... ({} items)", *size);
    if (kind == TypeKind::kTuple && *size == 1) text += ",";
    text += kind == TypeKind::kList ? "]" : ")";
    return text;
}

std::string ObjectReader::renderDict(uint64_t object, const RenderLimits& limits, int depth) {
    std::string text = "{";
    size_t shown = 0;
    bool more = false;
    bool ok = forEachDictItem(
        object,
        [&](uint64_t key, uint64_t value) {
            if (shown == limits.maxItems) {
                more = true;
                return false;
            }
            if (shown++) text += ", ";
            auto keyText = kindOf(key) == TypeKind::kStr ? readStr(key, 64) : std::nullopt;
            bool secret = keyText && looksSecret(*keyText);
            text += render(key, limits, depth + 1) + ": " +
                    (secret ? std::string(kMasked) : render(value, limits, depth + 1));
            return true;
        },
        limits.maxItems + 1);
    if (!ok) return fmt::format("<dict at {:#x}>", object);
    if (more) text += ", ...";
    return text + "}";
}

}  // namespace vigil
