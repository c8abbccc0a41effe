#include "core/txn_id.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include <fmt/format.h>

namespace vigil {

// The counter file. Lock-free atomics are address-free, so they work between
// processes that map the same page at different addresses. Fork-safety comes
// for free: the mapping is MAP_SHARED, so a forked child increments the very
// same counter as its parent instead of a copy of it.
struct TxnIdSource::Counter {
    std::atomic<uint64_t> magic;  // kMagic once next is initialised
    std::atomic<uint64_t> next;   // the next counter value to hand out
};

namespace {

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(TxnIdSource::Counter) == 16);

constexpr uint64_t kMagic = 0x3130'4e58'5447'4956;  // "VIGTXN01", little-endian
constexpr off_t kFileSize = sizeof(TxnIdSource::Counter);
// Initialising takes microseconds: a lock held longer is held for good.
constexpr std::chrono::milliseconds kLockPatience(2000);

// Powers of two on purpose: 7 and 8 bits of the id pick the words.
constexpr std::string_view kAdjectives[] = {
    "agile",    "amber",    "ample",    "ancient",  "angry",    "ardent",  "atomic",  "azure",
    "bold",     "brave",    "breezy",   "bright",   "brisk",    "calm",    "candid",  "careful",
    "cheerful", "clever",   "cosmic",   "cozy",     "crimson",  "crisp",   "curious", "dapper",
    "daring",   "dazzling", "deft",     "devoted",  "diligent", "dreamy",  "eager",   "earnest",
    "elastic",  "elegant",  "epic",     "fearless", "fervent",  "festive", "fluffy",  "focused",
    "fond",     "frank",    "friendly", "frosty",   "gallant",  "gentle",  "gifted",  "gleaming",
    "glowing",  "golden",   "graceful", "grand",    "happy",    "hardy",   "hearty",  "heroic",
    "honest",   "hopeful",  "humble",   "icy",      "jaunty",   "jolly",   "jovial",  "joyful",
    "keen",     "kind",     "lively",   "loyal",    "lucid",    "lucky",   "magical", "majestic",
    "mellow",   "merry",    "mighty",   "modest",   "nimble",   "noble",   "patient", "peaceful",
    "perky",    "placid",   "playful",  "plucky",   "polite",   "proud",   "quick",   "quiet",
    "quirky",   "radiant",  "rapid",    "rosy",     "rugged",   "serene",  "sharp",   "shiny",
    "silent",   "silky",    "sleek",    "smooth",   "snappy",   "snug",    "solid",   "sonic",
    "speedy",   "spry",     "stately",  "steady",   "stoic",    "sturdy",  "sunny",   "swift",
    "tender",   "thrifty",  "tidy",     "tranquil", "trusty",   "upbeat",  "valiant", "velvet",
    "vibrant",  "vivid",    "warm",     "wise",     "witty",    "zany",    "zealous", "zen",
};
constexpr std::string_view kSurnames[] = {
    "abel",       "adleman",      "agnesi",        "alhazen",   "allen",       "alvarez",
    "ampere",     "apgar",        "archimedes",    "arrhenius", "aryabhata",   "avogadro",
    "babbage",    "backus",       "bacon",         "baird",     "banach",      "bardeen",
    "bartik",     "bayes",        "becquerel",     "bell",      "benz",        "bernoulli",
    "bessel",     "bhabha",       "blackwell",     "bohr",      "boltzmann",   "boole",
    "borg",       "born",         "bose",          "boyle",     "bragg",       "brahe",
    "brattain",   "brunel",       "bunsen",        "burnell",   "cantor",      "cardano",
    "carnot",     "carson",       "cauchy",        "cavendish", "cayley",      "celsius",
    "cerf",       "chadwick",     "chandrasekhar", "chebyshev", "church",      "clarke",
    "clausius",   "codd",         "cohen",         "compton",   "conway",      "copernicus",
    "coulomb",    "cray",         "crick",         "curie",     "dalton",      "darwin",
    "davy",       "dedekind",     "descartes",     "diesel",    "diffie",      "dijkstra",
    "dirac",      "doppler",      "eckert",        "edison",    "einstein",    "elion",
    "engelbart",  "eratosthenes", "erdos",         "euclid",    "euler",       "faraday",
    "fermat",     "fermi",        "feynman",       "fibonacci", "fleming",     "foucault",
    "fourier",    "franklin",     "fresnel",       "friedmann", "galileo",     "galois",
    "galvani",    "gamow",        "gauss",         "geiger",    "germain",     "gibbs",
    "godel",      "goldberg",     "goodall",       "gosling",   "hadamard",    "haldane",
    "halley",     "hamilton",     "hamming",       "hardy",     "hawking",     "heaviside",
    "heisenberg", "herschel",     "hertz",         "hilbert",   "hoare",       "hodgkin",
    "hollerith",  "hooke",        "hopper",        "hubble",    "huffman",     "humboldt",
    "huygens",    "hypatia",      "jackson",       "jacobi",    "jemison",     "johnson",
    "joule",      "kahan",        "kapitsa",       "kay",       "kelvin",      "kepler",
    "kernighan",  "khayyam",      "khwarizmi",     "kilby",     "kirchhoff",   "knuth",
    "kolmogorov", "kovalevskaya", "lagrange",      "lamarr",    "lamport",     "landau",
    "laplace",    "lavoisier",    "leakey",        "leavitt",   "lebesgue",    "leibniz",
    "lemaitre",   "liskov",       "lister",        "lorentz",   "lovelace",    "lyapunov",
    "mandelbrot", "marconi",      "markov",        "mauchly",   "maxwell",     "mccarthy",
    "mcclintock", "meitner",      "mendel",        "mendeleev", "merian",      "michelson",
    "milner",     "minsky",       "mirzakhani",    "moore",     "morse",       "nakamura",
    "napier",     "nash",         "neumann",       "newton",    "nightingale", "nobel",
    "noether",    "noyce",        "nyquist",       "ohm",       "onsager",     "pascal",
    "pasteur",    "pauli",        "pauling",       "pavlov",    "payne",       "penrose",
    "perey",      "perlman",      "planck",        "poincare",  "poisson",     "priestley",
    "ptolemy",    "pythagoras",   "raman",         "ramanujan", "rayleigh",    "riemann",
    "ritchie",    "rivest",       "roentgen",      "rubin",     "rutherford",  "sagan",
    "salk",       "sammet",       "schrodinger",   "shamir",    "shannon",     "snell",
    "somerville", "sommerfeld",   "stirling",      "stokes",    "sutherland",  "tarjan",
    "tesla",      "thales",       "thompson",      "thomson",   "torvalds",    "tu",
    "tukey",      "turing",       "ulam",          "vaughan",   "venn",        "volta",
    "wallace",    "watt",         "weierstrass",   "wiener",    "wiles",       "wilkes",
    "wing",       "wozniak",      "wright",        "wu",        "yalow",       "yonath",
    "yukawa",     "zermelo",      "zuse",          "zwicky",
};
static_assert(std::size(kAdjectives) == 128);
static_assert(std::size(kSurnames) == 256);

constexpr size_t longest(std::span<const std::string_view> words) {
    size_t length = 0;
    for (std::string_view word : words) length = std::max(length, word.size());
    return length;
}
static_assert(longest(kAdjectives) + 1 + longest(kSurnames) + 1 + 4 <= TxnIdSource::kMaxLength);

// Odd multipliers are invertible modulo 2^31, hence bijections of [0, 2^31).
constexpr uint32_t kMultiplier1 = 0x5bd1e995 & TxnIdSource::kIdMask;
constexpr uint32_t kMultiplier2 = 0x27d4eb2f & TxnIdSource::kIdMask;
static_assert(kMultiplier1 % 2 == 1 && kMultiplier2 % 2 == 1);

// The inverse of an odd number modulo 2^32 (so modulo 2^31 too): each Newton
// step doubles the number of correct low bits, 3 of which are right at first.
constexpr uint32_t inverse(uint32_t odd) {
    uint32_t inverse = odd;
    for (int i = 0; i < 5; ++i) inverse *= 2 - odd * inverse;
    return inverse;
}
static_assert(((kMultiplier1 * inverse(kMultiplier1)) & TxnIdSource::kIdMask) == 1);
static_assert(((kMultiplier2 * inverse(kMultiplier2)) & TxnIdSource::kIdMask) == 1);

// x ^ (x >> shift) keeps the top shift bits, from which the next ones down
// come back, and so on: a bijection too.
constexpr uint32_t unxorshift(uint32_t value, int shift) {
    uint32_t result = value;
    for (int done = shift; done < static_cast<int>(TxnIdSource::kIdBits); done += shift) {
        result = value ^ (result >> shift);
    }
    return result;
}

// The OS's randomness, or (very early at boot) the clock and PID.
uint64_t randomStart() {
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) == sizeof value) return value;
    auto now = std::chrono::system_clock::now().time_since_epoch().count();
    return (static_cast<uint64_t>(now) * 0x9e37'79b9'7f4a'7c15) ^ static_cast<uint64_t>(getpid());
}

std::string systemError(std::string_view what) {
    return fmt::format("{}: {}", what, std::strerror(errno));
}

class FileDescriptor {
  public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    ~FileDescriptor() {
        if (fd_ >= 0) ::close(fd_);
    }

  private:
    int fd_;
};

// A process that created the file holds this lock until the counter is
// initialised, so waiting for the lock is waiting for the magic. Bounded, in
// case another process holds it for good. Returns why not, or "".
std::string lockWithin(int fd, std::chrono::milliseconds patience) {
    auto deadline = std::chrono::steady_clock::now() + patience;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return systemError("flock");
        if (std::chrono::steady_clock::now() > deadline) {
            return fmt::format("another process kept it locked for {} ms", patience.count());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return {};
}

// Refuses a file that another user could have planted or could write.
std::string checkOwnership(const struct stat& status) {
    if (!S_ISREG(status.st_mode)) return "it is not a regular file";
    if (status.st_uid != geteuid()) {
        return fmt::format("it is owned by uid {}, not {}", status.st_uid, geteuid());
    }
    if ((status.st_mode & 07777) != 0600) {
        return fmt::format("its mode is {:04o}, not 0600", status.st_mode & 07777);
    }
    return {};
}

// Under the lock: sizes and initialises the file if its creator did not
// finish (or has not started), then maps it. Returns why not, or "".
std::string mapLocked(int fd, TxnIdSource::Counter*& counter) {
    struct stat status;
    if (fstat(fd, &status) != 0) return systemError("fstat");
    if (status.st_size != 0 && status.st_size != kFileSize) {
        return fmt::format("its size is {} bytes, not {}", status.st_size, kFileSize);
    }
    if (status.st_size == 0 && ftruncate(fd, kFileSize) != 0) return systemError("ftruncate");
    void* memory = mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (memory == MAP_FAILED) return systemError("mmap");
    auto* mapped = static_cast<TxnIdSource::Counter*>(memory);
    uint64_t magic = mapped->magic.load(std::memory_order_acquire);
    if (magic == 0) {
        // A random start, so that ids after a reboot (tmpfs emptied) do not
        // begin where those of the last boot did.
        mapped->next.store(randomStart(), std::memory_order_relaxed);
        mapped->magic.store(kMagic, std::memory_order_release);
    } else if (magic != kMagic) {
        munmap(memory, kFileSize);
        return fmt::format("it does not hold a vigil counter (magic {:#x})", magic);
    }
    counter = mapped;
    return {};
}

// Opens, checks and maps the counter file; returns why not, or "".
std::string mapCounterFile(const std::string& path, TxnIdSource::Counter*& counter) {
    // O_NOFOLLOW: a symbolic link planted in a shared directory is refused.
    constexpr int kFlags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    for (int attempt = 0; attempt < 3; ++attempt) {
        bool created = true;
        int fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600);
        if (fd < 0 && errno == EEXIST) {
            created = false;
            fd = ::open(path.c_str(), kFlags);
            if (fd < 0 && errno == ENOENT) continue;  // removed meanwhile: create it
        }
        if (fd < 0) {
            return errno == ELOOP ? "it is a symbolic link" : systemError("cannot open it");
        }
        FileDescriptor file(fd);
        // The creator locks at once; a process that opened the file before
        // (created == false) waits on the lock until the magic is set. If the
        // creator died first, whoever locks next initialises the file.
        if (created && fchmod(fd, 0600) != 0) return systemError("fchmod");  // despite the umask
        struct stat status;
        if (fstat(fd, &status) != 0) return systemError("fstat");
        if (std::string refusal = checkOwnership(status); !refusal.empty()) return refusal;
        if (std::string busy = lockWithin(fd, kLockPatience); !busy.empty()) return busy;
        std::string why = mapLocked(fd, counter);
        // Explicitly: the mapping keeps the open file, hence its lock, alive
        // after close().
        flock(fd, LOCK_UN);
        return why;
    }
    return "it kept disappearing while we opened it";
}

}  // namespace

TxnIdSource TxnIdSource::open(const std::string& dir) {
    TxnIdSource source;
    std::string path = fmt::format("{}/vigil-txn-{}", dir, geteuid());
    std::string why = mapCounterFile(path, source.counter_);
    if (why.empty()) {
        source.mappedBytes_ = kFileSize;
        return source;
    }
    source.fallbackReason_ = fmt::format(
        "transaction ids: cannot use the counter file {} ({}), so they are unique only among "
        "this process and its forks",
        path, why);
    // Anonymous but MAP_SHARED: still shared with the forks of this process.
    void* memory =
        mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory != MAP_FAILED) {
        source.counter_ = static_cast<Counter*>(memory);
        source.mappedBytes_ = kFileSize;
    } else {
        source.owned_ = std::make_unique<Counter>();
        source.counter_ = source.owned_.get();
        source.fallbackReason_ += " (not even with its forks: no shared memory)";
    }
    source.counter_->next.store(randomStart(), std::memory_order_relaxed);
    source.counter_->magic.store(kMagic, std::memory_order_release);
    return source;
}

TxnIdSource::TxnIdSource(TxnIdSource&& other) noexcept {
    *this = std::move(other);
}

TxnIdSource& TxnIdSource::operator=(TxnIdSource&& other) noexcept {
    if (this == &other) return *this;
    release();
    counter_ = std::exchange(other.counter_, nullptr);
    mappedBytes_ = std::exchange(other.mappedBytes_, 0);
    owned_ = std::move(other.owned_);
    fallbackReason_ = std::move(other.fallbackReason_);
    return *this;
}

TxnIdSource::~TxnIdSource() {
    release();
}

void TxnIdSource::release() {
    if (mappedBytes_ != 0) munmap(counter_, mappedBytes_);
    counter_ = nullptr;
    mappedBytes_ = 0;
    owned_.reset();
}

size_t TxnIdSource::next(char* out) {
    // Relaxed: the atomic increment alone hands every value out once;
    // nothing else is published through the counter.
    uint64_t value = counter_->next.fetch_add(1, std::memory_order_relaxed);
    return format(static_cast<uint32_t>(value & kIdMask), out);
}

uint32_t TxnIdSource::mix(uint32_t counter) {
    // Consecutive counters differ in their low bits: the multiplication
    // carries a change upwards, the xorshift brings the high bits back down,
    // twice, so that every part of the id changes from one to the next.
    uint32_t x = counter & kIdMask;
    x = (x * kMultiplier1) & kIdMask;
    x ^= x >> 16;
    x = (x * kMultiplier2) & kIdMask;
    x ^= x >> 15;
    return x;
}

uint32_t TxnIdSource::unmix(uint32_t mixed) {
    uint32_t x = mixed & kIdMask;
    x = unxorshift(x, 15);
    x = (x * inverse(kMultiplier2)) & kIdMask;
    x = unxorshift(x, 16);
    x = (x * inverse(kMultiplier1)) & kIdMask;
    return x;
}

size_t TxnIdSource::format(uint32_t counter, char* out) {
    uint32_t mixed = mix(counter);
    std::string_view adjective = kAdjectives[mixed >> 24];
    std::string_view surname = kSurnames[(mixed >> 16) & 0xff];
    char* end = std::copy(adjective.begin(), adjective.end(), out);
    *end++ = '_';
    end = std::copy(surname.begin(), surname.end(), end);
    *end++ = '_';
    constexpr char kHex[] = "0123456789abcdef";
    for (int shift = 12; shift >= 0; shift -= 4) *end++ = kHex[(mixed >> shift) & 0xf];
    *end = '\0';
    return static_cast<size_t>(end - out);
}

std::span<const std::string_view> TxnIdSource::adjectives() {
    return kAdjectives;
}

std::span<const std::string_view> TxnIdSource::surnames() {
    return kSurnames;
}

}  // namespace vigil
