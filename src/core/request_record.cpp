#include "core/request_record.h"

#include <cmath>

#include "core/agent_state.h"

namespace vigil {

nlohmann::json requestLogJson(const FinishedRequest& request) {
    using nlohmann::json;
    json attributes = json::object();
    for (const auto& [key, value] : request.attributes) attributes[key] = value;
    auto seconds = [](int64_t ns) { return std::round(static_cast<double>(ns) / 1e3) / 1e6; };
    json line = {
        {"txn", request.txn},
        {"name", request.name},
        {"user", request.user.empty() ? json(nullptr) : json(request.user)},
        {"service", request.service},
        {"pid", request.pid},
        {"native_thread_id", request.nativeThreadId},
        {"start", isoTimeUtc(request.startNs)},
        {"duration", seconds(request.durationNs)},
        {"cpu", request.cpuNs < 0 ? json(nullptr) : json(seconds(request.cpuNs))},
        {"outcome", request.outcome},
        {"http_status", request.httpStatus ? json(request.httpStatus) : json(nullptr)},
        {"attributes", std::move(attributes)},
        {"samples", request.samples},
        {"profile_kept", request.profileKept},
    };
    if (request.exception) {
        line["exception"] = {{"type", request.exception->type},
                             {"message", request.exception->message}};
    }
    return line;
}

}  // namespace vigil
