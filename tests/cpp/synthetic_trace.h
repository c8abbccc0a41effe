// A trace directory written event by event with the times the test
// chooses: every event gets a stamp (exact, `precise`) or none (placed by
// interpolation), blocks are cut where the test says. For tests of what
// reads traces, where TraceWriter's real clock would make times unknown.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trace/block_encoder.h"
#include "trace/code_table.h"
#include "trace/format.h"
#include "trace/segment_writer.h"
#include "trace/source_store.h"
#include "trace/thread_trace.h"
#include "trace/trace_meta.h"

namespace vigil::testing {

class SyntheticTrace {
  public:
    static constexpr int64_t kUntimed = -1;

    // A process directory whose writer is gone (the reader reports a torn
    // last block as an error, as for a dead process).
    explicit SyntheticTrace(std::string dir, std::string processName = "synthetic")
        : dir_(std::move(dir)) {
        std::filesystem::create_directories(dir_);
        TraceMeta meta;
        meta.version = trace::kFormatVersion;
        meta.pid = ::getpid();
        meta.processStartTicks = 1;  // not ours: the writer is gone
        meta.processName = std::move(processName);
        meta.startMonotonicNs = 0;
        meta.startRealtimeNs = int64_t{1'700'000'000} * 1'000'000'000;
        trace::writeTraceMeta(dir_, meta);
        segments_ = std::make_unique<trace::SegmentWriter>(dir_, int64_t{64} << 20);
    }

    uint32_t code(const std::string& file, const std::string& qualname, uint32_t firstLine) {
        return codes_.define(file, qualname, firstLine);
    }
    // Writes `text` into `file` (a path of the test's own) and keeps it as
    // that file's source.
    void source(const std::string& file, const std::string& text) {
        std::ofstream(file, std::ios::binary) << text;
        sources_.push_back(file);
    }

    // Events of thread `tid` at `ns` (kUntimed: no stamp).
    SyntheticTrace& call(int32_t tid, int64_t ns, uint32_t code, uint32_t line) {
        return record(tid, ns, {trace::rawWord(trace::kRawCall, code), line});
    }
    SyntheticTrace& line(int32_t tid, int64_t ns, uint32_t line) {
        return record(tid, ns, {trace::rawWord(trace::kRawLine, line)});
    }
    SyntheticTrace& ret(int32_t tid, int64_t ns) {
        return record(tid, ns, {trace::rawWord(trace::kRawReturn, 0)});
    }
    SyntheticTrace& exception(int32_t tid, int64_t ns, uint32_t line) {
        return record(tid, ns, {trace::rawWord(trace::kRawException, line)});
    }
    SyntheticTrace& task(int32_t tid, int64_t ns, uint64_t task) {
        return record(
            tid, ns,
            {trace::kRawTask, static_cast<uint32_t>(task), static_cast<uint32_t>(task >> 32)});
    }
    // A time point between two events of the thread.
    SyntheticTrace& mark(int32_t tid, int64_t ns) {
        addTime(thread(tid).words, trace::kRawMark, ns);
        return *this;
    }

    // What thread `tid` recorded since its last block becomes a block.
    SyntheticTrace& cut(int32_t tid) {
        Thread& t = thread(tid);
        if (t.words.empty()) return *this;
        trace::BlockEncoder encoder(3);
        encoder.start(t.replay);
        encoder.add(t.words, t.replay);
        std::string block, error;
        encoder.finish(nextBlock_++, t.serial, tid, block);
        if (!segments_->append(block, encoder.header(), error)) throw std::runtime_error(error);
        t.words.clear();
        return *this;
    }

    // Cuts every thread's last block (in the order threads were first
    // used) and writes the code table and sources.
    void finish() {
        for (int32_t tid : order_) cut(tid);
        std::ofstream codes(dir_ + "/" + trace::kCodesFile, std::ios::binary);
        codes << trace::fileHeader(trace::kCodesMagic, 0) << codes_.takeRecords();
        std::ofstream sources(dir_ + "/" + trace::kSourcesFile, std::ios::binary);
        sources << trace::fileHeader(trace::kSourcesMagic, 0);
        trace::SourceKeeper keeper;
        for (const std::string& file : sources_) sources << keeper.recordFor(file, 0);
    }

    const std::string& dir() const { return dir_; }

  private:
    struct Thread {
        uint32_t serial = 0;
        std::vector<uint32_t> words;
        trace::ThreadReplay replay;
    };

    static void addTime(std::vector<uint32_t>& words, trace::RawKind kind, int64_t ns) {
        words.push_back(
            static_cast<uint32_t>(static_cast<uint64_t>(ns) >> 32) << trace::kRawKindBits | kind);
        words.push_back(static_cast<uint32_t>(ns));
    }

    Thread& thread(int32_t tid) {
        auto found = threads_.find(tid);
        if (found != threads_.end()) return found->second;
        order_.push_back(tid);
        Thread& t = threads_[tid];
        t.serial = static_cast<uint32_t>(threads_.size());
        return t;
    }

    SyntheticTrace& record(int32_t tid, int64_t ns, std::vector<uint32_t> words) {
        Thread& t = thread(tid);
        if (ns != kUntimed) addTime(t.words, trace::kRawStamp, ns);
        t.words.insert(t.words.end(), words.begin(), words.end());
        return *this;
    }

    std::string dir_;
    std::unique_ptr<trace::SegmentWriter> segments_;
    trace::CodeTableBuilder codes_;
    std::map<int32_t, Thread> threads_;
    std::vector<int32_t> order_;
    std::vector<std::string> sources_;
    uint64_t nextBlock_ = 0;
};

}  // namespace vigil::testing
