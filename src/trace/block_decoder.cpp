#include "trace/block_decoder.h"

#include <zstd.h>

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "trace/crc32.h"

namespace vigil::trace {
namespace {

// A time point at twice an event's rank (a stamp: that event's own time)
// or at twice a rank minus one (a mark: between that event and the one
// before).
struct TimePoint {
    int64_t position;
    int64_t ns;
};

std::string decompress(const BlockHeader& header, std::string_view compressed) {
    std::string raw(header.rawSize, '\0');
    size_t size = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
    if (ZSTD_isError(size))
        throw FormatError(fmt::format("payload does not decompress ({})", ZSTD_getErrorName(size)));
    if (size != raw.size())
        throw FormatError(
            fmt::format("payload decompresses to {} bytes, the header says {}", size, raw.size()));
    return raw;
}

// Also gives each event's bracket: none with a stamp of its own, else the
// time points around it (none outside them: the writer never writes such
// blocks).
void interpolate(std::vector<TimePoint>& points, std::vector<TraceEvent>& events,
                 std::vector<TimeBracket>* brackets) {
    if (brackets) brackets->assign(events.size(), TimeBracket{});
    if (points.empty()) return;  // the writer starts every block with one
    for (size_t i = 1; i < points.size(); ++i)
        points[i].ns = std::max(points[i].ns, points[i - 1].ns);
    size_t next = 0;  // the first point at or after the event
    for (size_t i = 0; i < events.size(); ++i) {
        int64_t position = 2 * static_cast<int64_t>(i);
        while (next < points.size() && points[next].position < position) ++next;
        TraceEvent& event = events[i];
        if (next < points.size() && points[next].position == position) {
            event.estimatedTimeNs = points[next].ns;
        } else if (next == 0) {
            event.estimatedTimeNs = points.front().ns;
        } else if (next == points.size()) {
            event.estimatedTimeNs = points.back().ns;
        } else {
            const TimePoint& a = points[next - 1];
            const TimePoint& b = points[next];
            double fraction = static_cast<double>(position - a.position) /
                              static_cast<double>(b.position - a.position);
            event.estimatedTimeNs =
                a.ns + static_cast<int64_t>(static_cast<double>(b.ns - a.ns) * fraction);
            if (brackets) (*brackets)[i] = {a.ns, b.ns};
        }
    }
}

}  // namespace

void checkPayload(const BlockHeader& header, std::string_view compressed) {
    if (compressed.size() != header.compressedSize)
        throw FormatError(fmt::format("payload of {} bytes, the header says {}", compressed.size(),
                                      header.compressedSize));
    if (crc32(compressed) != header.payloadCrc) throw FormatError("bad payload checksum");
}

std::vector<TraceEvent> decodeBlock(const BlockHeader& header, std::string_view compressed) {
    std::vector<TraceEvent> events;
    decodeBlock(header, compressed, events, nullptr);
    return events;
}

void decodeBlock(const BlockHeader& header, std::string_view compressed,
                 std::vector<TraceEvent>& events, std::vector<TimeBracket>* brackets) {
    checkPayload(header, compressed);
    std::string raw = decompress(header, compressed);
    ByteReader reader(raw);
    std::vector<TraceFrame> stack = header.stack;
    uint64_t task = header.task;
    events.clear();
    events.reserve(header.events);
    std::vector<TimePoint> points;
    int64_t lastNs = header.firstNs;
    bool stamped = false;  // the next event has a time point of its own

    auto emit = [&](TraceEventKind kind, const TraceFrame& frame, uint32_t depth) {
        events.push_back({header.thread, task, kind, frame.code, frame.line, depth, 0, stamped});
        stamped = false;
    };
    auto top = [&]() -> TraceFrame& { return stack.back(); };
    auto depth = [&] { return static_cast<uint32_t>(stack.size() - 1); };

    while (!reader.atEnd()) {
        size_t offset = reader.offset();
        uint8_t tag = reader.u8();
        if (tag <= kTagLineLong) {
            uint64_t delta = tag < kTagLineLong ? tag : reader.varint();
            top().line = static_cast<uint32_t>(top().line + unzigzag(delta));
            emit(TraceEventKind::kLine, top(), depth());
            continue;
        }
        switch (tag) {
            case kTagCall: {
                TraceFrame frame;
                frame.code = static_cast<uint32_t>(reader.varint());
                frame.line = static_cast<uint32_t>(reader.varint());
                if (stack.size() < kMaxStackFrames) stack.push_back(frame);
                emit(TraceEventKind::kCall, frame, depth());
                break;
            }
            case kTagReturn:
                emit(TraceEventKind::kReturn, top(), depth());
                if (stack.size() > 1) stack.pop_back();
                break;
            case kTagException:
                top().line = static_cast<uint32_t>(top().line + unzigzag(reader.varint()));
                emit(TraceEventKind::kException, top(), depth());
                break;
            case kTagTask:
                task = reader.varint();
                emit(TraceEventKind::kTaskSwitch, top(), depth());
                break;
            case kTagStamp:
            case kTagMark: {
                lastNs += unzigzag(reader.varint());
                // A stamp times the next event; one that ends the block
                // (which the writer never does) counts as a mark.
                int64_t rank = static_cast<int64_t>(events.size());
                points.push_back({tag == kTagStamp ? 2 * rank : 2 * rank - 1, lastNs});
                stamped = tag == kTagStamp;
                break;
            }
            default:
                throw FormatError(
                    fmt::format("unknown tag 0x{:02x} at payload offset {}", tag, offset));
        }
    }
    if (stamped) points.back().position -= 1;
    if (events.size() != header.events)
        throw FormatError(fmt::format("{} events in the payload, the header says {}", events.size(),
                                      header.events));
    interpolate(points, events, brackets);
}

}  // namespace vigil::trace
