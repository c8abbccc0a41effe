// Per-function totals of a profile, for `vigil top`: own samples (the
// function is innermost) and total samples (the function is anywhere on the
// stack, counted once per sample even under recursion).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/profile.h"

namespace vigil {

struct FunctionKey {
    StringId name = 0;
    StringId file = 0;
    bool operator==(const FunctionKey&) const = default;
};

struct FunctionKeyHash {
    size_t operator()(const FunctionKey& key) const {
        return std::hash<uint64_t>()((uint64_t{key.name} << 32) | key.file);
    }
};

struct FunctionCounts {
    uint64_t own = 0;
    uint64_t total = 0;
};

using FunctionTable = std::unordered_map<FunctionKey, FunctionCounts, FunctionKeyHash>;

// Python functions only: thread and process roots are left out.
FunctionTable functionCounts(const Profile& profile);

}  // namespace vigil
