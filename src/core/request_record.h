// A finished request as the agent keeps it: one line of the JSON request
// log, one row of the store, with its profile and its exception when the
// rules kept them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil {

struct FrameRecord {
    std::string function;  // qualified name
    std::string file;
    int line = 0;
    // name -> safe repr, truncated; secrets already masked as '***'.
    std::vector<std::pair<std::string, std::string>> locals;
};

struct ExceptionRecord {
    std::string type;                // qualified: "ValueError", "myapp.errors.Refused"
    std::string message;             // str(exception), truncated
    std::vector<FrameRecord> stack;  // outermost first, as in a traceback
};

struct FinishedRequest {
    std::string txn;
    std::string name;
    std::string user;  // "" = none
    std::string service;
    int32_t pid = 0;
    int32_t nativeThreadId = 0;
    int64_t startNs = 0;         // CLOCK_REALTIME
    int64_t durationNs = 0;      // monotonic
    int64_t cpuNs = -1;          // the thread's CPU time during the request; -1 unknown
    std::string outcome = "ok";  // "ok" or "error"
    int httpStatus = 0;          // 0: not an HTTP request, or not known
    std::vector<std::pair<std::string, std::string>> attributes;
    uint32_t samples = 0;      // samples taken of the request's thread
    bool profileKept = false;  // then profileFolded holds them
    // Collapsed stacks, outermost first, one "a;b;c COUNT" line per stack
    // (Brendan Gregg's folded format).
    std::string profileFolded;
    std::optional<ExceptionRecord> exception;
};

// The line of the JSON request log (docs/agent.md): the request without
// its profile and stack.
nlohmann::json requestLogJson(const FinishedRequest& request);

}  // namespace vigil
