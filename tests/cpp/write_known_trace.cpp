// Writes the known trace of known_trace.h, for tests/python/test_replay.py.
//
//   vigil_write_known_trace BASE           the whole trace, then exits
//   vigil_write_known_trace BASE --live    the first part, then "ready DIR"
//       on stdout; on a line from stdin the rest, then "more"; it exits when
//       stdin ends, so that the trace stays live until the test is done
//
// The trace goes to BASE/<run>/prog/ (BASE/latest/prog), the sources it
// keeps to BASE/src/.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>

#include "known_trace.h"

int main(int argc, char** argv) {
    using namespace vigil;
    bool live = argc == 3 && std::string(argv[2]) == "--live";
    if (argc != 2 && !live) {
        std::fprintf(stderr, "usage: vigil_write_known_trace BASE [--live]\n");
        return 2;
    }
    std::string base = argv[1];
    std::filesystem::create_directories(base + "/src");
    auto writer = TraceWriter::open(base, "prog", ::getpid(), testing::preciseOptions());
    testing::KnownTrace trace(*writer, base + "/src");
    trace.firstPart();
    if (live) {
        std::cout << "ready " << writer->dir() << std::endl;
        std::string line;
        std::getline(std::cin, line);
    }
    trace.secondPart();
    if (live) {
        std::cout << "more" << std::endl;
        std::cin.ignore(std::numeric_limits<std::streamsize>::max());
    }
    return 0;
}
