#include "trace/trace_analysis.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

namespace vigil {
namespace {

// uint64 key -> dense index, open addressing with linear probing: the
// tables are small (one entry per line or function that ran) and looked up
// once per line event.
class FlatIndex {
  public:
    static constexpr uint64_t kEmpty = ~uint64_t{0};

    FlatIndex() { rehash(1024); }

    // The index of `key`, or `fresh` (which the caller then uses) when new.
    int32_t find(uint64_t key, int32_t fresh) {
        size_t mask = keys_.size() - 1;
        for (size_t at = hash(key) & mask;; at = (at + 1) & mask) {
            if (keys_[at] == key) return values_[at];
            if (keys_[at] == kEmpty) {
                keys_[at] = key;
                values_[at] = fresh;
                if (++size_ * 2 > keys_.size()) rehash(keys_.size() * 2);
                return fresh;
            }
        }
    }

  private:
    static size_t hash(uint64_t key) {
        return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20);
    }
    void rehash(size_t capacity) {
        std::vector<uint64_t> keys(capacity, kEmpty);
        std::vector<int32_t> values(capacity, 0);
        keys.swap(keys_);
        values.swap(values_);
        size_t mask = capacity - 1;
        for (size_t i = 0; i < keys.size(); ++i) {
            if (keys[i] == kEmpty) continue;
            size_t at = hash(keys[i]) & mask;
            while (keys_[at] != kEmpty) at = (at + 1) & mask;
            keys_[at] = keys[i];
            values_[at] = values[i];
        }
    }

    std::vector<uint64_t> keys_;
    std::vector<int32_t> values_;
    size_t size_ = 0;
};

struct Frame {
    uint32_t code = 0;
    uint32_t line = 0;
    int32_t function = -1;  // in functions; -1: the root
    int32_t lineSlot = -1;  // in lines; -1: the root
    // The next frame further out running the same code (recursion); -1: none.
    int32_t outerSameCode = -1;
    uint64_t task = 0;
    uint32_t callLine = 0;
    int64_t callNs = 0;
    trace::TimeBracket callBracket;
    int64_t lineNs = 0;
    trace::TimeBracket lineBracket;
    bool before = false;  // from a block header: running before the trace started
    bool tied = false;    // started at its caller's start time
};

class Analyser {
  public:
    Analyser(const AnalysisOptions& options, TraceAnalysis& result)
        : options_(options), result_(result) {}

    void thread(const TraceReader& reader, const std::vector<const TraceBlock*>& blocks) {
        thread_ = blocks.front()->thread;
        ThreadSummary summary{thread_, blocks.front()->threadSerial, 0, blocks.front()->firstNs,
                              blocks.front()->lastNs};
        started_ = false;
        stack_.clear();
        for (const TraceBlock* block : blocks) {
            try {
                reader.decode(*block, events_, brackets_);
            } catch (const BadFileError& error) {
                result_.warnings.push_back(error.what());
                break;
            }
            if (events_.empty()) continue;
            if (!started_ || !sameStack(*block)) {
                if (started_) finish(lastNs_);
                start(*block);
            }
            for (size_t i = 0; i < events_.size(); ++i) event(events_[i], brackets_[i]);
            lastNs_ = std::max(block->lastNs, prevNs_);
            summary.events += events_.size();
            summary.lastNs = std::max(summary.lastNs, block->lastNs);
            ++result_.blocks;
        }
        if (started_) finish(lastNs_);
        result_.events += summary.events;
        result_.threads.push_back(summary);
    }

    // Frames and lines into the result's rows.
    void collect() {
        result_.lines = std::move(lines_);
        result_.functions = std::move(functions_);
    }

  private:
    // The header's stack is the one the previous block left (else blocks
    // are missing in between: a dropped segment).
    bool sameStack(const TraceBlock& block) const {
        if (block.stack.size() != stack_.size()) return false;
        for (size_t i = 1; i < stack_.size(); ++i)
            if (block.stack[i].code != stack_[i].code || block.stack[i].line != stack_[i].line)
                return false;
        return true;
    }

    // The frames of the block's header, running since its first event.
    void start(const TraceBlock& block) {
        int64_t ns = events_.front().estimatedTimeNs;
        trace::TimeBracket bracket = brackets_.front();
        stack_.clear();
        stack_.push_back({});
        stack_.back().task = block.task;
        for (size_t i = 1; i < block.stack.size(); ++i) {
            push(block.stack[i].code, block.stack[i].line, block.task, ns, bracket, true);
        }
        prevNs_ = ns;
        started_ = true;
    }

    // Every frame still open ends at `ns` (the thread's last time point).
    void finish(int64_t ns) {
        own(ns);
        while (stack_.size() > 1) pop(ns, {}, true);
        started_ = false;
    }

    int32_t lineSlot(uint32_t code, uint32_t line) {
        if (code == 0) return -1;
        int32_t fresh = static_cast<int32_t>(lines_.size());
        int32_t slot = lineIndex_.find(uint64_t{code} << 32 | line, fresh);
        if (slot == fresh) {
            lines_.push_back({code, line, 0, 0, 0, 0});
            lineCharged_.emplace_back();
        }
        return slot;
    }

    void push(uint32_t code, uint32_t line, uint64_t task, int64_t ns,
              const trace::TimeBracket& bracket, bool before) {
        Frame frame;
        frame.code = code;
        frame.line = line;
        frame.callLine = line;
        frame.task = task;
        frame.callNs = frame.lineNs = ns;
        frame.callBracket = frame.lineBracket = bracket;
        frame.before = before;
        frame.tied = stack_.size() > 1 && stack_.back().callNs == ns;
        if (code != 0) {
            int32_t fresh = static_cast<int32_t>(functions_.size());
            frame.function = functionIndex_.find(code, fresh);
            if (frame.function == fresh) {
                functions_.push_back({code, 0, 0, 0, 0});
                functionCharged_.emplace_back();
                innermost_.push_back(-1);
            }
            frame.outerSameCode = innermost_[static_cast<size_t>(frame.function)];
            innermost_[static_cast<size_t>(frame.function)] = static_cast<int32_t>(stack_.size());
            frame.lineSlot = lineSlot(code, line);
            if (!before) {
                ++functions_[static_cast<size_t>(frame.function)].calls;
                ++lines_[static_cast<size_t>(frame.lineSlot)].count;
            }
        }
        stack_.push_back(frame);
    }

    // The frame's current line ends at `ns`.
    void closeLine(const Frame& frame, int64_t ns, const trace::TimeBracket& bracket) {
        if (frame.lineSlot < 0) return;
        for (int32_t outer = frame.outerSameCode; outer >= 0;
             outer = stack_[static_cast<size_t>(outer)].outerSameCode) {
            if (stack_[static_cast<size_t>(outer)].lineSlot == frame.lineSlot) return;
        }
        size_t slot = static_cast<size_t>(frame.lineSlot);
        lines_[slot].timeNs += ns - frame.lineNs;
        charge(lines_[slot].boundNs, lineCharged_[slot], frame.lineBracket);
        charge(lines_[slot].boundNs, lineCharged_[slot], bracket);
    }

    void pop(int64_t ns, const trace::TimeBracket& bracket, bool unfinished) {
        const Frame& frame = stack_.back();
        closeLine(frame, ns, bracket);
        if (frame.function >= 0) {
            size_t function = static_cast<size_t>(frame.function);
            innermost_[function] = frame.outerSameCode;
            if (frame.outerSameCode < 0) {
                functions_[function].timeNs += ns - frame.callNs;
                charge(functions_[function].boundNs, functionCharged_[function], frame.callBracket);
                charge(functions_[function].boundNs, functionCharged_[function], bracket);
            }
            if (options_.onCall) {
                options_.onCall({thread_, frame.task, frame.code, frame.callLine,
                                 static_cast<uint32_t>(stack_.size() - 1), frame.callNs, ns,
                                 frame.tied, frame.before, unfinished});
            }
        }
        stack_.pop_back();
    }

    // The time since the previous event goes to the innermost frame.
    void own(int64_t ns) {
        int64_t spent = std::max<int64_t>(0, ns - prevNs_);
        const Frame& top = stack_.back();
        if (top.lineSlot >= 0) lines_[static_cast<size_t>(top.lineSlot)].ownNs += spent;
        if (top.function >= 0) functions_[static_cast<size_t>(top.function)].ownNs += spent;
        prevNs_ = std::max(prevNs_, ns);
    }

    void event(const TraceEvent& event, const trace::TimeBracket& bracket) {
        int64_t ns = std::max(event.estimatedTimeNs, prevNs_);
        own(ns);
        Frame& top = stack_.back();
        switch (event.kind) {
            case TraceEventKind::kLine:
                closeLine(top, ns, bracket);
                top.line = event.line;
                top.lineSlot = lineSlot(top.code, event.line);
                if (top.lineSlot >= 0) ++lines_[static_cast<size_t>(top.lineSlot)].count;
                top.lineNs = ns;
                top.lineBracket = bracket;
                break;
            case TraceEventKind::kException:
                if (event.line != top.line) {
                    closeLine(top, ns, bracket);
                    top.line = event.line;
                    top.lineSlot = lineSlot(top.code, event.line);
                    top.lineNs = ns;
                    top.lineBracket = bracket;
                }
                break;
            case TraceEventKind::kCall:
                push(event.code, event.line, event.task, ns, bracket, false);
                break;
            case TraceEventKind::kReturn:
                if (stack_.size() > 1) pop(ns, bracket, false);
                break;
            case TraceEventKind::kTaskSwitch:
                break;
        }
    }

    // A row's time within one bracket is off by at most the bracket's
    // width, however many of its executions start or end there: each
    // bracket is charged once per row (a row's endpoints come in time
    // order, so the last one charged is the one to compare with).
    static void charge(int64_t& bound, trace::TimeBracket& last,
                       const trace::TimeBracket& bracket) {
        if (bracket.width() <= 0 || bracket == last) return;
        bound += bracket.width();
        last = bracket;
    }

    const AnalysisOptions& options_;
    TraceAnalysis& result_;
    int32_t thread_ = 0;
    std::vector<TraceEvent> events_;
    std::vector<trace::TimeBracket> brackets_;
    std::vector<Frame> stack_;
    bool started_ = false;
    int64_t prevNs_ = 0;
    int64_t lastNs_ = 0;
    std::vector<LineStats> lines_;
    std::vector<FunctionStats> functions_;
    std::vector<trace::TimeBracket> lineCharged_;      // per line: the last bracket charged
    std::vector<trace::TimeBracket> functionCharged_;  // per function
    std::vector<int32_t> innermost_;  // per function: its innermost frame on the stack, -1: none
    FlatIndex lineIndex_;
    FlatIndex functionIndex_;
};

template <typename Row>
std::vector<Row> top(std::vector<Row> rows, AnalysisSort sort, size_t count) {
    auto key = [sort](const Row& row) -> int64_t {
        switch (sort) {
            case AnalysisSort::kOwn:
                return row.ownNs;
            case AnalysisSort::kAverage:
                return averageNs(row);
            case AnalysisSort::kCount:
                if constexpr (requires { row.calls; })
                    return static_cast<int64_t>(row.calls);
                else
                    return static_cast<int64_t>(row.count);
            case AnalysisSort::kTime:
                break;
        }
        return row.timeNs;
    };
    auto order = [&](const Row& a, const Row& b) {
        int64_t ka = key(a), kb = key(b);
        if (ka != kb) return ka > kb;
        if (a.timeNs != b.timeNs) return a.timeNs > b.timeNs;
        if (a.code != b.code) return a.code < b.code;
        if constexpr (requires { a.line; }) return a.line < b.line;
        return false;
    };
    if (count == 0 || count > rows.size()) count = rows.size();
    std::partial_sort(rows.begin(), rows.begin() + static_cast<ptrdiff_t>(count), rows.end(),
                      order);
    rows.resize(count);
    return rows;
}

}  // namespace

TraceAnalysis analyseTrace(const TraceReader& reader, const AnalysisOptions& options) {
    TraceAnalysis result;
    std::unordered_set<int32_t> wanted(options.threads.begin(), options.threads.end());
    // Each thread's blocks in write order (serials: a reused native id is
    // another thread).
    std::map<uint32_t, std::vector<const TraceBlock*>> threads;
    bool any = false;
    for (const TraceBlock& block : reader.blocks()) {
        if (!wanted.empty() && !wanted.contains(block.thread)) continue;
        threads[block.threadSerial].push_back(&block);
        result.firstNs = any ? std::min(result.firstNs, block.firstNs) : block.firstNs;
        result.lastNs = any ? std::max(result.lastNs, block.lastNs) : block.lastNs;
        any = true;
    }
    Analyser analyser(options, result);
    for (auto& [serial, blocks] : threads) {
        std::sort(blocks.begin(), blocks.end(),
                  [](const TraceBlock* a, const TraceBlock* b) { return a->number < b->number; });
        analyser.thread(reader, blocks);
    }
    analyser.collect();
    std::sort(result.threads.begin(), result.threads.end(),
              [](const ThreadSummary& a, const ThreadSummary& b) {
                  return std::pair(a.firstNs, a.serial) < std::pair(b.firstNs, b.serial);
              });
    return result;
}

const char* analysisSortName(AnalysisSort sort) {
    switch (sort) {
        case AnalysisSort::kOwn:
            return "own";
        case AnalysisSort::kCount:
            return "count";
        case AnalysisSort::kAverage:
            return "average";
        case AnalysisSort::kTime:
            break;
    }
    return "time";
}

std::vector<LineStats> topLines(const TraceAnalysis& analysis, AnalysisSort sort, size_t count) {
    return top(analysis.lines, sort, count);
}

std::vector<FunctionStats> topFunctions(const TraceAnalysis& analysis, AnalysisSort sort,
                                        size_t count) {
    return top(analysis.functions, sort, count);
}

std::string_view sourceLine(std::string_view text, uint32_t line) {
    size_t at = 0;
    for (uint32_t i = 1; i < line; ++i) {
        at = text.find('\n', at);
        if (at == std::string_view::npos) return {};
        ++at;
    }
    if (line == 0 || at >= text.size()) return {};
    size_t end = text.find('\n', at);
    std::string_view found = text.substr(at, end == std::string_view::npos ? end : end - at);
    if (!found.empty() && found.back() == '\r') found.remove_suffix(1);
    return found;
}

}  // namespace vigil
