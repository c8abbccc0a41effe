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
    uint64_t code(const std::string& name, const std::string& file, int firstLine) {
        uint64_t object = allocate(layout_.code.size + 64);
        put(object + layout_.object.ob_type, codeType_ ? codeType_ : (codeType_ = type("code")));
        put(object + layout_.code.name, str(name));
        put(object + layout_.code.filename, str(file));
        if (layout_.code.qualname != kNone) put(object + layout_.code.qualname, str(name));
        put(object + layout_.code.firstlineno, int32_t(firstLine));
        put(object + layout_.code.linetable, bytes({}));
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
        put(state + layout_.thread.frame, frame);
        put(state + layout_.thread.thread_id, uint64_t{0x7f0000001000});
        return state;
    }

  private:
    PyLayout layout_;
    std::vector<uint8_t> bytes_;
    size_t used_ = 16;
    uint64_t strType_ = 0, bytesType_ = 0, codeType_ = 0, frameType_ = 0;
};

}  // namespace vigil::testing
