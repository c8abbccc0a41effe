// Interned strings: every distinct file and function name is stored once and
// referred to by a small id, so frames and samples stay plain values.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace vigil {

using StringId = uint32_t;

class StringTable {
  public:
    StringTable() { intern(""); }

    StringId intern(std::string_view text) {
        auto found = ids_.find(text);
        if (found != ids_.end()) return found->second;
        // A deque never moves its elements, so the views used as keys stay valid.
        strings_.emplace_back(text);
        StringId id = static_cast<StringId>(strings_.size() - 1);
        ids_.emplace(strings_.back(), id);
        return id;
    }
    const std::string& get(StringId id) const { return strings_.at(id); }
    size_t size() const { return strings_.size(); }

  private:
    std::deque<std::string> strings_;
    std::unordered_map<std::string_view, StringId> ids_;
};

}  // namespace vigil
