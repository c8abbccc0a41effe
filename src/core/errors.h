// The error hierarchy. Every failure vigil reports to a user is one of these:
// the message is the one line the CLI prints, the exit code is documented in
// docs/exit-codes.md and stable.
#pragma once

#include <stdexcept>
#include <string>

namespace vigil {

enum class ExitCode : int {
    kOk = 0,
    kInternal = 1,            // a bug in vigil
    kUsage = 2,               // bad command line
    kNoSuchProcess = 3,       // no process with that PID
    kNotPython = 4,           // the process is not a Python interpreter we can read
    kUnsupportedVersion = 5,  // Python older than 3.8
    kPermission = 6,          // not allowed to read the process
    kProcessExited = 7,       // the process went away while being read
    kInconsistent = 8,        // the target kept changing under us; no consistent snapshot
    kBadFile = 9,             // a file vigil was asked to read is missing or corrupt
    kOutput = 10,             // cannot write the requested output
    kConfig = 11,             // bad configuration (agent TOML file, VIGIL_* variables)
    kNoAgent = 12,            // the process runs no vigil agent
    kNoSuchTransaction = 13,  // the store holds no such transaction (or not its profile)
};

class Error : public std::runtime_error {
  public:
    Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const { return code_; }

  private:
    ExitCode code_;
};

#define VIGIL_ERROR_TYPE(Name, Code)                                        \
    class Name : public Error {                                             \
      public:                                                               \
        explicit Name(const std::string& message) : Error(Code, message) {} \
    }

VIGIL_ERROR_TYPE(UsageError, ExitCode::kUsage);
VIGIL_ERROR_TYPE(NoSuchProcessError, ExitCode::kNoSuchProcess);
VIGIL_ERROR_TYPE(NotPythonError, ExitCode::kNotPython);
VIGIL_ERROR_TYPE(UnsupportedVersionError, ExitCode::kUnsupportedVersion);
VIGIL_ERROR_TYPE(PermissionError, ExitCode::kPermission);
VIGIL_ERROR_TYPE(ProcessExitedError, ExitCode::kProcessExited);
VIGIL_ERROR_TYPE(InconsistentError, ExitCode::kInconsistent);
VIGIL_ERROR_TYPE(BadFileError, ExitCode::kBadFile);
VIGIL_ERROR_TYPE(OutputError, ExitCode::kOutput);
VIGIL_ERROR_TYPE(ConfigError, ExitCode::kConfig);
VIGIL_ERROR_TYPE(NoAgentError, ExitCode::kNoAgent);
VIGIL_ERROR_TYPE(NoSuchTransactionError, ExitCode::kNoSuchTransaction);

#undef VIGIL_ERROR_TYPE

}  // namespace vigil
