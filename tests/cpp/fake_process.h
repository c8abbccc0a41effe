// A fake target process in a byte buffer: just enough interpreter
// structures, laid out with a real version's offsets, to drive the stack
// walker and the object reader through BufferMemory.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/layout.h"
#include "core/memory.h"

namespace vigil::testing {

class FakeProcess {
  public:
    static constexpr uint64_t kBase = 0x100000;

    explicit FakeProcess(const PyLayout& layout) : layout_(layout), bytes_(1 << 20) {}

    const PyLayout& layout() const { return layout_; }
    BufferMemory memory() { return BufferMemory(kBase, bytes_); }

    uint64_t allocate(size_t size) {
        uint64_t address = kBase + used_;
        used_ += (size + 15) & ~size_t{15};
        return address;
    }
    template <typename T>
    void put(uint64_t address, T value) {
        std::memcpy(bytes_.data() + (address - kBase), &value, sizeof(T));
    }
    template <typename T>
    T get(uint64_t address) const {
        T value;
        std::memcpy(&value, bytes_.data() + (address - kBase), sizeof(T));
        return value;
    }

    uint64_t type(const std::string& name, uint64_t flags = 0) {
        uint64_t nameAddress = cString(name);
        uint64_t type = allocate(512);
        put(type + layout_.type.tp_name, nameAddress);
        put(type + layout_.type.tp_flags, flags);
        return type;
    }
    uint64_t cString(const std::string& text) {
        uint64_t address = allocate(text.size() + 1);
        std::memcpy(bytes_.data() + (address - kBase), text.c_str(), text.size() + 1);
        return address;
    }
    // A compact ASCII str.
    uint64_t str(const std::string& text) {
        uint64_t object = allocate(layout_.unicode.ascii_size + text.size() + 1);
        put(object + layout_.object.ob_type,
            strType_ ? strType_ : (strType_ = type("str", 1ull << 28)));
        put(object + layout_.unicode.length, int64_t(text.size()));
        // interned 0, kind 1 (bits 2-4), compact (bit 5), ascii (bit 6)
        put(object + layout_.unicode.state, uint32_t{(1u << 2) | (1u << 5) | (1u << 6)});
        std::memcpy(bytes_.data() + (object + layout_.unicode.ascii_size - kBase), text.data(),
                    text.size());
        return object;
    }
    uint64_t bytes(const std::vector<uint8_t>& data) {
        uint64_t object = allocate(layout_.bytes.ob_sval + data.size() + 1);
        put(object + layout_.object.ob_type,
            bytesType_ ? bytesType_ : (bytesType_ = type("bytes", 1ull << 27)));
        put(object + layout_.object.ob_size, int64_t(data.size()));
        if (!data.empty())
            std::memcpy(bytes_.data() + (object + layout_.bytes.ob_sval - kBase), data.data(),
                        data.size());
        return object;
    }
    // On 3.11+ with the sizes its frames take on the data stack; its bytecode
    // starts at code_adaptive.
    uint64_t code(const std::string& name, const std::string& file, int firstLine,
                  int32_t nlocalsplus = 0, int32_t stacksize = 0) {
        uint64_t object = allocate(layout_.code.size + 64);
        put(object + layout_.object.ob_type - 8, uint64_t{1});  // ob_refcnt
        put(object + layout_.object.ob_type, codeType_ ? codeType_ : (codeType_ = type("code")));
        put(object + layout_.code.name, str(name));
        put(object + layout_.code.filename, str(file));
        if (layout_.code.qualname != kNone) put(object + layout_.code.qualname, str(name));
        put(object + layout_.code.firstlineno, int32_t(firstLine));
        put(object + layout_.code.linetable, bytes({}));
        if (layout_.code.nlocalsplus != kNone) {
            put(object + layout_.code.nlocalsplus, nlocalsplus);
            put(object + layout_.code.stacksize, stacksize);
        }
        return object;
    }
    // 3.8-3.10: a PyFrameObject.
    uint64_t frameObject(uint64_t code, uint64_t back) {
        uint64_t frame = allocate(layout_.frame.size + 64);
        put(frame + layout_.object.ob_type, frameType_ ? frameType_ : (frameType_ = type("frame")));
        put(frame + layout_.frame.code, code);
        put(frame + layout_.frame.previous, back);
        put(frame + layout_.frame.lasti, int32_t{-1});
        return frame;
    }
    uint64_t threadState(uint64_t interp, uint64_t frame) {
        uint64_t state = allocate(layout_.thread.size);
        put(state + layout_.thread.interp, interp);
        if (layout_.thread.frame != kNone) put(state + layout_.thread.frame, frame);
        put(state + layout_.thread.thread_id, uint64_t{0x7f0000001000});
        return state;
    }

    // 3.11+: frame owners (pycore_frame.h).
    static constexpr uint8_t kOwnedByThread = 0;
    static constexpr uint8_t kOwnedByGenerator = 1;
    static constexpr uint8_t kOwnedByCStack = 3;
    static constexpr int64_t kByteOffset = 6;  // where interpreterFrame() stops its code

    // 3.11+: a _PyInterpreterFrame at frame.
    void interpreterFrame(uint64_t frame, uint64_t code, uint64_t previous,
                          uint8_t owner = kOwnedByThread) {
        put(frame + layout_.frame.code, code);
        put(frame + layout_.frame.previous, previous);
        put(frame + layout_.frame.owner, owner);
        put(frame + layout_.frame.instr_ptr, code + layout_.code.code_adaptive + kByteOffset);
    }
    // 3.11+: the bytes a frame of this code takes on the data stack.
    uint64_t frameSize(uint64_t code) const {
        return layout_.frame.size + 8 * uint64_t(get<int32_t>(code + layout_.code.nlocalsplus) +
                                                 get<int32_t>(code + layout_.code.stacksize));
    }

    // 3.11+: a _PyStackChunk holding frames of these codes end to end,
    // outermost first, the first one's previous being below.
    struct DataStack {
        uint64_t chunk = 0;
        uint64_t top = 0;              // the first free byte
        std::vector<uint64_t> frames;  // outermost first
    };
    DataStack dataStack(const std::vector<uint64_t>& codes, uint64_t below,
                        uint64_t previousChunk = 0) {
        constexpr uint64_t kChunkSize = 16 * 1024;
        DataStack stack;
        stack.chunk = allocate(kChunkSize);
        put(stack.chunk + layout_.chunk.previous, previousChunk);
        put(stack.chunk + layout_.chunk.size, kChunkSize);
        // The root chunk leaves its first slot empty (push_chunk in pystate.c).
        stack.top = stack.chunk + layout_.chunk.data + (previousChunk ? 0 : 8);
        for (uint64_t code : codes) {
            interpreterFrame(stack.top, code, stack.frames.empty() ? below : stack.frames.back());
            stack.frames.push_back(stack.top);
            stack.top += frameSize(code);
        }
        return stack;
    }

    // 3.12: what an eval loop keeps on the C stack: its entry shim frame,
    // below its first Python frame, and its _PyCFrame.
    struct CStack {
        uint64_t shim = 0;
        uint64_t cframe = 0;
    };
    CStack cStack() {
        uint64_t shim = allocate(layout_.frame.size + 16);
        interpreterFrame(shim, 0, 0, kOwnedByCStack);
        return {shim, shim + layout_.frame.size};
    }
    // 3.11-3.12: a thread state running frames off cframe on this data
    // stack; excInfo, if set, is where a running generator points exc_info.
    uint64_t dataStackThread(uint64_t cframe, const DataStack& stack, uint64_t excInfo = 0) {
        uint64_t state = threadState(0x1234, 0);
        put(state + layout_.thread.cframe, cframe);
        put(state + layout_.thread.datastack_chunk, stack.chunk);
        put(state + layout_.thread.datastack_top, stack.top);
        put(state + layout_.thread.exc_info, excInfo ? excInfo : state + layout_.thread.exc_state);
        return state;
    }

  private:
    PyLayout layout_;
    std::vector<uint8_t> bytes_;
    size_t used_ = 16;
    uint64_t strType_ = 0, bytesType_ = 0, codeType_ = 0, frameType_ = 0;
};

}  // namespace vigil::testing
