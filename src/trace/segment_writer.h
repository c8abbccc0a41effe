// The writer thread's files of blocks: segments (events-NNNNNN.vtr), each
// with its index (events-NNNNNN.vti, one entry per block), rolled at a
// size; the oldest are deleted, index and all, to keep the trace within its
// size limit.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "trace/file_io.h"
#include "trace/format.h"

namespace vigil::trace {

class SegmentWriter {
  public:
    // Creates the first segment in `dir`. Throws OutputError.
    SegmentWriter(std::string dir, int64_t segmentBytes);

    // Appends a block (as BlockEncoder::finish wrote it) and its index
    // entry. On a failure, both files are cut back to where they were (a
    // trace never ends in a torn block of ours) and `error` says which file
    // and why.
    bool append(std::string_view block, const BlockHeader& header, std::string& error);
    // Deletes the oldest segments, never the one being written, while all
    // segments and `otherBytes` together exceed `maxBytes`. Returns how
    // many it deleted.
    size_t dropOldest(int64_t maxBytes, int64_t otherBytes);
    // Segments and their indexes, on disk now.
    int64_t bytes() const { return bytes_; }

  private:
    struct Segment {
        uint32_t number;
        int64_t bytes;  // of the segment and its index
    };

    // Creates segment `number` and its index; false, with `error` set,
    // when it cannot.
    bool open(uint32_t number, std::string& error);

    const std::string dir_;
    const int64_t segmentBytes_;
    std::deque<Segment> segments_;  // oldest first; back() is being written
    File data_;
    File index_;
    int64_t dataSize_ = 0;
    int64_t indexSize_ = 0;
    int64_t bytes_ = 0;
    std::string entry_;
};

}  // namespace vigil::trace
