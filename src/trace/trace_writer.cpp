#include "trace/trace_writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <utility>

#include <fmt/format.h>

#include "core/agent_state.h"
#include "core/errors.h"
#include "trace/run_dir.h"
#include "trace/trace_meta.h"

namespace vigil {

using namespace trace;

namespace {

constexpr auto kTick = std::chrono::milliseconds(10);
// A partly filled chunk is written once its oldest unwritten record was
// first seen this long ago.
constexpr int64_t kTailAgeNs = 50'000'000;

TraceOptions clamped(TraceOptions options) {
    TraceLimits& limits = options.limits;
    if (limits.maxBytes > 0)
        limits.segmentBytes = std::min(limits.segmentBytes, limits.maxBytes / 4);
    limits.segmentBytes = std::max<int64_t>(limits.segmentBytes, 1);
    return options;
}

// Creates the directory and claims it with the trace's description.
std::string claimDir(std::string dir, const std::string& processName, pid_t pid) {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) throw OutputError(fmt::format("cannot create {}: {}", dir, error.message()));
    TraceMeta meta;
    meta.version = kFormatVersion;
    meta.pid = pid;
    meta.processStartTicks = processStartTicks(pid).value_or(0);
    meta.processName = processName;
    meta.startMonotonicNs = clockNs(CLOCK_MONOTONIC);
    meta.startRealtimeNs = clockNs(CLOCK_REALTIME);
    writeTraceMeta(dir, meta);
    return dir;
}

File createFile(const std::string& dir, const char* name, std::string_view magic) {
    std::string path = fmt::format("{}/{}", dir, name);
    File file(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
    int error = file.valid() ? file.write(fileHeader(magic, 0)) : errno;
    if (error) throw OutputError(fmt::format("cannot create {}: {}", path, errorText(error)));
    return file;
}

}  // namespace

std::unique_ptr<TraceWriter> TraceWriter::open(const std::string& baseDir,
                                               const std::string& processName, pid_t pid,
                                               TraceOptions options,
                                               const std::string& parentRunDir) {
    bool child = !parentRunDir.empty();
    std::string runDir = child ? parentRunDir : createRunDir(baseDir, clockNs(CLOCK_REALTIME));
    std::string dir = fmt::format("{}/{}", runDir, processDirName(processName, pid, child));
    return std::make_unique<TraceWriter>(std::move(dir), processName, pid, std::move(options));
}

TraceWriter::TraceWriter(std::string dir, const std::string& processName, pid_t pid,
                         TraceOptions options)
    : dir_(claimDir(std::move(dir), processName, pid)),
      runDir_(std::filesystem::path(dir_).parent_path().string()),
      options_(clamped(std::move(options))),
      segments_(dir_, options_.limits.segmentBytes),
      codesFile_(createFile(dir_, kCodesFile, kCodesMagic)),
      sourcesFile_(createFile(dir_, kSourcesFile, kSourcesMagic)),
      encoder_(options_.compressionLevel) {
    recording_.maxBufferedBytes = options_.limits.maxBufferedBytes;
    std::error_code ignored;
    otherBytes_ = static_cast<int64_t>(
        std::filesystem::file_size(fmt::format("{}/{}", dir_, kMetaFile), ignored) +
        2 * kFileHeaderSize);
    bytesOnDisk_ = segments_.bytes() + otherBytes_;
    // The application's signal handlers must never run on this thread.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    thread_ = std::thread(&TraceWriter::run, this);
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    pthread_setname_np(thread_.native_handle(), "vigil-trace");
}

TraceWriter::~TraceWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    recording_.wake.ring();
    thread_.join();
    for (auto& recorded : threads_) release(*recorded);
}

ThreadTrace* TraceWriter::thread(int32_t nativeThreadId) {
    auto recorded = std::make_unique<Recorded>();
    std::lock_guard lock(mutex_);
    recorded->trace.reset(
        new ThreadTrace(recording_, nextSerial_++, nativeThreadId, options_.precise));
    ThreadTrace* trace = recorded->trace.get();
    threads_.push_back(std::move(recorded));
    return trace;
}

uint32_t TraceWriter::defineCode(std::string_view file, std::string_view qualname,
                                 uint32_t firstLine) {
    std::lock_guard lock(mutex_);
    uint32_t id = codes_.define(file, qualname, firstLine);
    // Before the caller appends the id: the writer's thread, which sees the
    // append, sees this too.
    if (codes_.hasRecords()) codesPending_.store(true, std::memory_order_release);
    return id;
}

void TraceWriter::keepSource(std::string_view file) {
    std::lock_guard lock(mutex_);
    sourcesPending_.emplace(file);
}

void TraceWriter::flush() {
    std::unique_lock lock(mutex_);
    uint64_t target = ++flushRequested_;
    recording_.wake.ring();
    done_.wait(lock, [&] { return flushDone_ >= target; });
}

TraceStats TraceWriter::stats() const {
    TraceStats stats;
    stats.events = events_.load(std::memory_order_relaxed);
    stats.blocks = blocks_.load(std::memory_order_relaxed);
    stats.bytesOnDisk = bytesOnDisk_.load(std::memory_order_relaxed);
    stats.segmentsDropped = segmentsDropped_.load(std::memory_order_relaxed);
    stats.stopped = recording_.stopped.load(std::memory_order_relaxed);
    return stats;
}

void TraceWriter::run() {
    while (true) {
        uint32_t rings = recording_.wake.rings();
        uint64_t target;
        bool stopping;
        {
            std::lock_guard lock(mutex_);
            target = flushRequested_;
            stopping = stopping_;
            passThreads_.clear();
            for (const auto& recorded : threads_) passThreads_.push_back(recorded.get());
        }
        pass(stopping || target != flushDone_);
        {
            std::lock_guard lock(mutex_);
            std::erase_if(threads_, [this](const std::unique_ptr<Recorded>& recorded) {
                if (recorded->finished) release(*recorded);
                return recorded->finished;
            });
            flushDone_ = target;
        }
        done_.notify_all();
        if (stopping) return;
        recording_.wake.sleep(rings, kTick);
    }
}

// One pass: every thread's full chunks, and the partly filled ones that
// are due (all of them for a flush).
void TraceWriter::pass(bool cutAll) {
    try {
        if (recording_.starved.load(std::memory_order_relaxed))
            stop(fmt::format("events came faster than they could be written ({} MiB waiting)",
                             options_.limits.maxBufferedBytes >> 20));
        writeSources();
        writeCodes();
        for (Recorded* recorded : passThreads_) recorded->finished = drain(*recorded, cutAll);
    } catch (const std::exception& error) {
        stop(fmt::format("internal error: {}", error.what()));
    }
}

// Writes what one thread published and is due; true once the thread ended
// and everything it appended is written.
bool TraceWriter::drain(Recorded& recorded, bool cutAll) {
    ThreadTrace& thread = *recorded.trace;
    // Read first: once the thread ended, everything below is final.
    bool ended = thread.ended_.load(std::memory_order_acquire);
    if (!recorded.chunk) recorded.chunk = thread.first_.load(std::memory_order_acquire);
    if (!recorded.chunk) return ended;
    while (true) {
        Chunk* chunk = recorded.chunk;
        Chunk* next = chunk->next.load(std::memory_order_acquire);
        if (next || ended) {
            writeUpTo(recorded, chunk->used);
            if (!next) return true;
            recorded.chunk = next;
            recorded.written = 0;
            if (!thread.giveBack(chunk)) {
                delete chunk;
                recording_.bufferedBytes.fetch_sub(sizeof(Chunk), std::memory_order_relaxed);
            }
            continue;
        }
        auto end = reinterpret_cast<uintptr_t>(thread.pos_.load(std::memory_order_acquire));
        // After the load: records before `end` happened before it. Records
        // after `end` happen after the load, a few tens of ns before it at
        // worst; taking it as their lower bound too keeps a thread's blocks
        // in time order.
        int64_t now = clockNs(CLOCK_MONOTONIC);
        auto begin = reinterpret_cast<uintptr_t>(chunk->words);
        // Past this chunk: the thread moved on, and `next` is set by now.
        if (end < begin || end > begin + sizeof(chunk->words)) continue;
        auto published = static_cast<uint32_t>((end - begin) / sizeof(uint32_t));
        observe(recorded, published, now);
        if (published == recorded.written) return false;
        if (!recorded.unwrittenSinceNs) recorded.unwrittenSinceNs = now;
        if (cutAll || now - recorded.unwrittenSinceNs >= kTailAgeNs) {
            // The block ends on the mark observe() queued at the cut (the
            // time it was first seen there); the next one starts on `now`.
            if (!recorded.seenMarked) {
                recorded.marks.push_back({chunk->sequence, published, recorded.seenNs});
                recorded.seenMarked = true;
            }
            writeUpTo(recorded, published);
            recorded.startNs = now;
            recorded.unwrittenSinceNs = 0;
        }
        return false;
    }
}

// A pass that finds new records asks the thread for a stamp on its next
// one, so that time points are never more than a pass or two apart. A pass
// that finds nothing new since the last queues a mark at that point, with
// the time it was first seen: the records before it happened before then;
// the next one, which will carry a stamp, after a quiet spell that
// interpolation must not spread over its neighbours.
void TraceWriter::observe(Recorded& recorded, uint32_t end, int64_t ns) {
    uint64_t sequence = recorded.chunk->sequence;
    if (end != recorded.seenEnd || sequence != recorded.seenSequence) {
        recorded.seenSequence = sequence;
        recorded.seenEnd = end;
        recorded.seenNs = ns;
        recorded.seenMarked = false;
        recorded.trace->askForStamp();
    } else if (!recorded.seenMarked && end > recorded.written) {
        recorded.marks.push_back({sequence, end, recorded.seenNs});
        recorded.seenMarked = true;
        recorded.trace->askForStamp();
    }
}

// Encodes the words of the current chunk from `written` to `end`, with the
// marks that fall among them, and writes them as a block.
void TraceWriter::writeUpTo(Recorded& recorded, uint32_t end) {
    if (end <= recorded.written) return;
    const Chunk& chunk = *recorded.chunk;
    encoder_.start(recorded.replay);
    // A chunk starts with a stamp; a block that starts mid-chunk, with this.
    if (recorded.written > 0) encoder_.mark(recorded.startNs);
    uint32_t at = recorded.written;
    size_t usedMarks = 0;
    for (; usedMarks < recorded.marks.size(); ++usedMarks) {
        const Mark& mark = recorded.marks[usedMarks];
        if (mark.sequence > chunk.sequence || (mark.sequence == chunk.sequence && mark.at > end))
            break;
        if (mark.sequence == chunk.sequence && mark.at >= at) {
            encoder_.add({chunk.words + at, chunk.words + mark.at}, recorded.replay);
            at = mark.at;
            encoder_.mark(mark.ns);
        }
    }
    recorded.marks.erase(recorded.marks.begin(),
                         recorded.marks.begin() + static_cast<ptrdiff_t>(usedMarks));
    encoder_.add({chunk.words + at, chunk.words + end}, recorded.replay);
    recorded.written = end;
    if (encoder_.events() > 0) writeBlock(recorded);
}

void TraceWriter::writeBlock(const Recorded& recorded) {
    // A block never names a code the table on disk lacks.
    writeCodes();
    if (recording_.stopped.load(std::memory_order_relaxed)) return;
    const ThreadTrace& thread = *recorded.trace;
    encoder_.finish(nextBlock_, thread.serial_, thread.nativeThreadId_, block_);
    std::string error;
    if (!segments_.append(block_, encoder_.header(), error)) return stop(error);
    ++nextBlock_;
    events_.fetch_add(encoder_.events(), std::memory_order_relaxed);
    blocks_.fetch_add(1, std::memory_order_relaxed);
    enforceLimit();
}

void TraceWriter::writeCodes() {
    if (!codesPending_.load(std::memory_order_acquire)) return;
    std::string records;
    {
        std::lock_guard lock(mutex_);
        records = codes_.takeRecords();
        codesPending_.store(false, std::memory_order_relaxed);
    }
    appendOther(codesFile_, kCodesFile, records);
}

void TraceWriter::writeSources() {
    std::unordered_set<std::string> paths;
    {
        std::lock_guard lock(mutex_);
        paths.swap(sourcesPending_);
    }
    int64_t now = clockNs(CLOCK_MONOTONIC);
    for (const std::string& path : paths) {
        std::string record = sourceKeeper_.recordFor(path, now);
        if (!record.empty()) appendOther(sourcesFile_, kSourcesFile, record);
    }
}

void TraceWriter::appendOther(File& file, const std::string& name, const std::string& bytes) {
    if (recording_.stopped.load(std::memory_order_relaxed)) return;
    int64_t before = file.size();
    if (int error = file.write(bytes)) {
        file.truncate(before);
        return stop(fmt::format("cannot write {}/{}: {}", dir_, name, errorText(error)));
    }
    otherBytes_ += static_cast<int64_t>(bytes.size());
    enforceLimit();
}

void TraceWriter::enforceLimit() {
    int64_t maxBytes = options_.limits.maxBytes;
    if (maxBytes > 0) {
        segmentsDropped_.fetch_add(segments_.dropOldest(maxBytes, otherBytes_),
                                   std::memory_order_relaxed);
        // Not even room for the segment being written.
        if (otherBytes_ > maxBytes - options_.limits.segmentBytes)
            stop(
                fmt::format("the trace reached its size limit of {} bytes with nothing left to "
                            "delete (its sources and code table take {} bytes)",
                            maxBytes, otherBytes_));
    }
    bytesOnDisk_.store(segments_.bytes() + otherBytes_, std::memory_order_relaxed);
}

void TraceWriter::stop(const std::string& why) {
    recording_.stopped.store(true, std::memory_order_relaxed);
    if (reported_) return;
    reported_ = true;
    if (options_.report)
        options_.report(fmt::format(
            "trace recording stopped: {}; the application goes on ({} events were written to {})",
            why, events_.load(std::memory_order_relaxed), dir_));
}

void TraceWriter::release(Recorded& recorded) {
    Chunk* chunk =
        recorded.chunk ? recorded.chunk : recorded.trace->first_.load(std::memory_order_acquire);
    while (chunk) {
        Chunk* next = chunk->next.load(std::memory_order_acquire);
        delete chunk;
        recording_.bufferedBytes.fetch_sub(sizeof(Chunk), std::memory_order_relaxed);
        chunk = next;
    }
    recorded.chunk = nullptr;
}

}  // namespace vigil
