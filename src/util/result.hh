// result.hh - Result<T>: a value or an Error, with std::expected's member names.
//
// C++20 has no std::expected; this is the small subset we need. Every function
// that can fail returns [[nodiscard]] Result<T>. TRY() propagates an error to the
// caller unchanged, so the error stays the one reported at its source.
#pragma once

#include "util/error.hh"

#include <cassert>
#include <optional>
#include <utility>
#include <variant>

namespace virtsnap {

// Wraps an Error to construct a failed Result, as std::unexpected.
struct Unexpected {
    Error error;
};

inline Unexpected fail(Error e) { return Unexpected{std::move(e)}; }
inline Unexpected fail(virErrorNumber code, virErrorDomain domain, std::string detail) {
    return Unexpected{make_error(code, domain, std::move(detail))};
}

template <typename T>
class [[nodiscard]] Result {
public:
    using value_type = T;
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Unexpected u) : state_(std::in_place_index<1>, std::move(u.error)) {}
    template <typename U>
        requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, Result> &&
                 !std::is_same_v<std::decay_t<U>, Unexpected> && !std::is_same_v<std::decay_t<U>, T>)
    Result(U &&value) : state_(std::in_place_index<0>, T(std::forward<U>(value))) {}

    bool has_value() const { return state_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T &value() & { assert(has_value()); return std::get<0>(state_); }
    const T &value() const & { assert(has_value()); return std::get<0>(state_); }
    T &&value() && { assert(has_value()); return std::get<0>(std::move(state_)); }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T &&operator*() && { return std::move(*this).value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }

    const Error &error() const & { assert(!has_value()); return std::get<1>(state_); }
    Error &&error() && { assert(!has_value()); return std::get<1>(std::move(state_)); }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)) {}

    bool has_value() const { return !error_.has_value(); }
    explicit operator bool() const { return has_value(); }
    void value() const { assert(has_value()); }
    const Error &error() const & { assert(!has_value()); return *error_; }
    Error &&error() && { assert(!has_value()); return std::move(*error_); }

private:
    std::optional<Error> error_;
};

using Status = Result<void>;

inline Status ok() { return {}; }

namespace detail {
template <typename T>
decltype(auto) take_value(Result<T> &&r) {
    if constexpr (std::is_void_v<T>) return;
    else return std::move(r).value();
}
}  // namespace detail

}  // namespace virtsnap

// Propagates a failed Result to the caller; yields the value otherwise.
// Uses a GNU statement expression (GCC and Clang), as QEMU and systemd do.
// Each expansion gets its own variable so nested TRYs (a TRY inside a lambda
// passed to a TRY) do not shadow each other.
#define VS_TRY_CONCAT_(a, b) a##b
#define VS_TRY_CONCAT(a, b) VS_TRY_CONCAT_(a, b)
#define TRY(expr) VS_TRY_IMPL(expr, VS_TRY_CONCAT(_try_result_, __COUNTER__))
#define VS_TRY_IMPL(expr, var)                                                 \
    ({                                                                         \
        auto var = (expr);                                                     \
        if (!var.has_value())                                                  \
            return ::virtsnap::Unexpected{std::move(var).error()};            \
        ::virtsnap::detail::take_value(std::move(var));                        \
    })
