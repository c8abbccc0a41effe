// Records the line-by-line execution of a process into a trace directory
// (docs/trace-format.md). This is the contract the capture side (the
// agent's trace function or sys.monitoring callbacks) codes against.
//
//   auto writer = TraceWriter::open(baseDir, "gunicorn", getpid());
//   // per thread, once (cache it in a thread_local):
//   ThreadTrace* thread = writer->thread(gettid());
//   // per code object, once (cache the id, e.g. in co_extra):
//   uint32_t code = writer->defineCode(file, qualname, firstLine);
//   writer->keepSource(file);
//   // per event, from that thread only:
//   thread->call(code, line); thread->line(n); thread->ret(); ...
//
// When a thread starts being recorded with frames already on its stack,
// the capture side calls call() for each of them, outermost first, so that
// its events get the right code and depth.
//
// Threads: the application's threads append to their ThreadTrace without
// a lock, a system call or (in the steady state) an allocation; thread(),
// defineCode() and keepSource() take a short lock and do no I/O; a
// background thread (signals blocked) takes what each thread published,
// encodes, compresses and writes it. It wakes every 10 ms, and at once
// when a thread fills a chunk (the one system call an append may make,
// only if the writer's thread sleeps: once per ~14,000 events). Nothing the
// application calls ever waits for the disk, except flush().
//
// Losses are bounded: a full chunk is written at once, and a partly filled
// one once its oldest unwritten event is 50 ms old (also for a thread that
// went idle), so a SIGKILL or a crash loses at most ~70 ms of events (plus
// the time of one pass of the writer thread).
// A write error (a full disk) or exhausted buffers stop the recording:
// one report line, the appends become no-ops, the application goes on.
//
// Fork: the child must not use the parent's writer (its thread did not
// survive the fork): it opens its own with the parent's runDir(), and
// leaks the parent's (destroying it would wait for a thread that is not
// there). The ThreadTrace pointers and code ids the capture side cached
// belong to the parent's writer: the child asks its own writer again (a
// writer generation kept next to each cached id tells stale ones).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "trace/block_encoder.h"
#include "trace/code_table.h"
#include "trace/file_io.h"
#include "trace/segment_writer.h"
#include "trace/source_store.h"
#include "trace/thread_trace.h"

namespace vigil {

struct TraceLimits {
    // The whole process directory; past it the oldest segments are deleted.
    // 0: no limit.
    int64_t maxBytes = int64_t{1} << 30;
    // A segment is closed once it is this large (at most maxBytes / 4, so
    // that deleting one frees a quarter at most).
    int64_t segmentBytes = int64_t{64} << 20;
    // Events appended and not written yet, all threads together; a thread
    // that needs more stops the recording.
    int64_t maxBufferedBytes = int64_t{64} << 20;
};

struct TraceOptions {
    TraceLimits limits;
    bool precise = false;  // the mode every ThreadTrace starts in
    int compressionLevel = 3;
    // One line (no "vigil: " prefix) when the recording stops, on the
    // writer's thread; never more than once.
    std::function<void(const std::string&)> report;
};

struct TraceStats {
    uint64_t events = 0;  // written
    uint64_t blocks = 0;
    int64_t bytesOnDisk = 0;  // the trace directory now
    uint64_t segmentsDropped = 0;
    bool stopped = false;
};

class TraceWriter {
  public:
    // A new run, <baseDir>/<YYMMDD-HHMMSS>/<processName>/, with
    // <baseDir>/latest pointing at the run directory. A forked child passes
    // its parent's runDir() instead (baseDir is then not used) and records
    // into <parentRunDir>/<processName>-<pid>. Throws OutputError.
    static std::unique_ptr<TraceWriter> open(const std::string& baseDir,
                                             const std::string& processName, pid_t pid,
                                             TraceOptions options = {},
                                             const std::string& parentRunDir = "");
    // Records into `dir` (created if need be; it must hold no trace yet).
    // Throws OutputError.
    TraceWriter(std::string dir, const std::string& processName, pid_t pid, TraceOptions options);
    // Writes everything appended, then joins the thread. No thread may
    // append any more.
    ~TraceWriter();
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;

    // A new buffer for the calling thread (its native id is recorded with
    // its events); a kernel id reused by a later thread gets a new one.
    // The pointer is valid until the thread calls end() on it, or the
    // writer is destroyed.
    ThreadTrace* thread(int32_t nativeThreadId);
    // The id of a code object (from 1): one per distinct (file, qualname,
    // first line), written to the code table before any block that uses it.
    uint32_t defineCode(std::string_view file, std::string_view qualname, uint32_t firstLine);
    // Keeps the file's current text with the trace, once per version (path,
    // modification time, size), on the writer's thread. Cheap to repeat.
    void keepSource(std::string_view file);

    // Returns once everything appended before the call is written to the
    // files (the kernel has it: a crash of the process loses none of it).
    void flush();

    TraceStats stats() const;
    const std::string& dir() const { return dir_; }
    const std::string& runDir() const { return runDir_; }

  private:
    struct Mark {
        uint64_t sequence;  // of the chunk
        uint32_t at;        // word
        int64_t ns;
    };
    // What the writer's thread knows of one ThreadTrace.
    struct Recorded {
        std::unique_ptr<ThreadTrace> trace;
        trace::Chunk* chunk = nullptr;  // the oldest chunk not written whole
        uint32_t written = 0;           // of its words, in blocks already
        // The time point a block that starts mid-chunk begins with.
        int64_t startNs = 0;
        trace::ThreadReplay replay;  // the thread at `written`
        // The end of the published records last seen, and when first seen.
        uint64_t seenSequence = UINT64_MAX;
        uint32_t seenEnd = 0;
        int64_t seenNs = 0;
        bool seenMarked = false;       // a mark is queued or written at seenEnd
        int64_t unwrittenSinceNs = 0;  // 0: everything seen is written
        std::vector<Mark> marks;       // not written yet, in order
        bool finished = false;         // ended, all written: to be freed
    };

    void run();
    void pass(bool cutAll);
    bool drain(Recorded& recorded, bool cutAll);
    void observe(Recorded& recorded, uint32_t end, int64_t ns);
    void writeUpTo(Recorded& recorded, uint32_t end);
    void writeBlock(const Recorded& recorded);
    void writeCodes();
    void writeSources();
    void appendOther(trace::File& file, const std::string& name, const std::string& bytes);
    void enforceLimit();
    void stop(const std::string& why);
    void release(Recorded& recorded);

    const std::string dir_;
    const std::string runDir_;
    const TraceOptions options_;
    trace::Recording recording_;

    std::mutex mutex_;
    std::condition_variable done_;  // from the thread: a pass is over
    std::vector<std::unique_ptr<Recorded>> threads_;
    uint32_t nextSerial_ = 1;
    trace::CodeTableBuilder codes_;
    std::atomic<bool> codesPending_{false};
    std::unordered_set<std::string> sourcesPending_;
    uint64_t flushRequested_ = 0;
    uint64_t flushDone_ = 0;
    bool stopping_ = false;

    // The thread's own state.
    std::vector<Recorded*> passThreads_;
    trace::SegmentWriter segments_;
    trace::File codesFile_;
    trace::File sourcesFile_;
    trace::BlockEncoder encoder_;
    trace::SourceKeeper sourceKeeper_;
    std::string block_;
    uint64_t nextBlock_ = 0;
    int64_t otherBytes_ = 0;  // meta, code table, sources
    bool reported_ = false;

    std::atomic<uint64_t> events_{0};
    std::atomic<uint64_t> blocks_{0};
    std::atomic<int64_t> bytesOnDisk_{0};
    std::atomic<uint64_t> segmentsDropped_{0};

    std::thread thread_;  // last: starts once everything above exists
};

}  // namespace vigil
