// Two kinds of failure (see docs/architecture.md):
//  - a bug in this code: WINCLIP_CHECK aborts with the expression and file:line;
//  - bad input from a caller, a file or a config: one of the typed exceptions
//    below, whose message says what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace winclip {

// Base of every error caused by input rather than by a bug.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A YAML experiment, prompt set, preset or command-line value is invalid.
class ConfigError : public Error {
public:
    using Error::Error;
};

// A dataset is malformed: missing masks, empty classes, wrong sizes.
class DatasetError : public Error {
public:
    using Error::Error;
};

// A checkpoint or model config does not match the architecture.
class ModelError : public Error {
public:
    using Error::Error;
};

// A file cannot be read, decoded or written (images, HDF5, JSON).
class IoError : public Error {
public:
    using Error::Error;
};

// An MPI call failed or ranks disagree.
class CommunicationError : public Error {
public:
    using Error::Error;
};

namespace detail {
[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace winclip

// Aborts on a broken internal invariant. Never use for input validation.
#define WINCLIP_CHECK(cond)                                                          \
    do {                                                                             \
        if (!(cond)) ::winclip::detail::check_failed(#cond, __FILE__, __LINE__, ""); \
    } while (0)

#define WINCLIP_CHECK_MSG(cond, msg)                                                  \
    do {                                                                              \
        if (!(cond)) ::winclip::detail::check_failed(#cond, __FILE__, __LINE__, msg); \
    } while (0)
