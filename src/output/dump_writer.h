// Rendering a snapshot of a process's threads for people (text) and for
// programs (JSON; schema in docs/dump-json.md).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/python_process.h"

namespace vigil {

struct DumpContext {
    const PythonProcess& process;
    const Snapshot& snapshot;
    const StringTable& strings;
    bool blocking = false;
    double durationMs = 0;
};

std::string dumpAsText(const DumpContext& context);
nlohmann::json dumpAsJson(const DumpContext& context);

}  // namespace vigil
