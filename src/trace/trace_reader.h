// Reads a trace directory (docs/trace-format.md), also while its process
// is still writing it: what is complete is read, reload() reads what came
// since.
//
// Every block is checked when it is first read (header, sizes, payload
// checksum), in the order it was written. The first bad one stops the
// reading: blocks() holds every block before it, error() says which block
// of which segment file is bad and why, so a tool prints what is intact
// and then the error (exit code 9). An incomplete last block is an error
// only once its writer is gone: while the process runs, it is the block
// being written.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "trace/block_decoder.h"
#include "trace/code_table.h"
#include "trace/file_io.h"
#include "trace/format.h"
#include "trace/source_store.h"
#include "trace/trace_meta.h"

namespace vigil {

struct TraceBlock {
    uint64_t number = 0;  // in write order
    uint32_t segment = 0;
    uint64_t offset = 0;
    uint32_t size = 0;  // header and payload
    uint32_t threadSerial = 0;
    int32_t thread = 0;  // native thread id
    uint64_t task = 0;   // at the start
    int64_t firstNs = 0;
    int64_t lastNs = 0;
    uint32_t events = 0;
    uint32_t minDepth = 0;          // the fewest frames above the root in the block
    std::vector<TraceFrame> stack;  // at the start, outermost first; [0] is the root

    uint32_t startDepth() const { return static_cast<uint32_t>(stack.size() - 1); }
};

class TraceReader {
  public:
    static constexpr int64_t kAll = std::numeric_limits<int64_t>::max();

    // A process directory (<base>/latest/<process-name> works). Throws
    // BadFileError when it holds no trace; a bad block is not thrown but
    // kept in error().
    explicit TraceReader(std::string dir);
    TraceReader(const TraceReader&) = delete;
    TraceReader& operator=(const TraceReader&) = delete;

    // Reads what was written since; true when there are new blocks.
    bool reload();

    const TraceMeta& meta() const { return meta_; }
    // Whether the writing process was running at the last (re)load.
    bool live() const { return live_; }

    // The intact blocks, in time order (first time, then number).
    const std::vector<TraceBlock>& blocks() const { return blocks_; }
    const std::optional<BadFileError>& error() const { return error_; }

    // Throws BadFileError (the file changed since it was checked).
    std::vector<TraceEvent> decode(const TraceBlock& block) const;
    // The same into `events` (replaced, its capacity reused), with where
    // each event's true time lies (block_decoder.h).
    void decode(const TraceBlock& block, std::vector<TraceEvent>& events,
                std::vector<trace::TimeBracket>& brackets) const;
    // The blocks whose time range meets [fromNs, toNs], in time order:
    // two binary searches, nothing decoded.
    std::vector<const TraceBlock*> overlapping(int64_t fromNs, int64_t toNs) const;
    // The events of every thread in [fromNs, toNs], by estimated time (the
    // order of each thread kept).
    std::vector<TraceEvent> events(int64_t fromNs = -kAll, int64_t toNs = kAll) const;

    // nullptr for an id the code table does not hold.
    const TraceCode* code(uint32_t id) const;
    // The text of `file` as kept during the recording: the last version
    // kept at or before `atNs`, or the first one if none was kept by then.
    std::optional<std::string> source(const std::string& file, int64_t atNs = kAll) const;

  private:
    struct Segment {
        trace::File data;
        uint64_t checkedEnd = 0;  // past the last block checked; 0: not even the header
        uint64_t indexRead = 0;   // bytes of the index file read
        std::map<uint64_t, trace::IndexEntry> entries;  // by offset, not used yet
    };
    enum class Outcome { kRead, kEnd, kStop };

    void load();
    void openNewSegments();
    bool readSegment(uint32_t number, Segment& segment, bool last);
    void readIndex(uint32_t number, Segment& segment);
    Outcome readBlock(uint32_t number, Segment& segment, bool last);
    void fail(uint32_t segment, const std::string& what);
    void decodeInto(const TraceBlock& block, std::vector<TraceEvent>& events,
                    std::vector<trace::TimeBracket>* brackets) const;
    template <typename Parse>
    void readTable(const char* name, std::string_view magic, uint64_t& offset, Parse parse);
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

    const std::string dir_;
    TraceMeta meta_;
    bool live_ = false;
    std::map<uint32_t, Segment> segments_;
    uint32_t current_ = 0;  // the segment reading goes on in
    std::optional<uint64_t> nextNumber_;
    bool broken_ = false;  // a bad block: nothing after it is read
    std::vector<TraceBlock> blocks_;
    std::vector<int64_t> lastNsUpTo_;  // the latest lastNs of blocks_[0..i]
    std::optional<BadFileError> error_;
    std::vector<TraceCode> codes_;
    uint64_t codesRead_ = 0;
    std::vector<KeptSource> sources_;
    uint64_t sourcesRead_ = 0;
};

}  // namespace vigil
