// xdr_fields.hh - one declaration per message drives both encoding and decoding.
//
// A message struct lists its fields once, in wire order, with VS_XDR_FIELDS(a, b, c).
// The Encode and Decode visitors walk that list; each C++ field type maps to one
// XDR type:
//   int32_t / uint32_t / int64_t / uint64_t / bool / double  -> int, uint, hyper, uhyper, bool, double
//   uint8_t / uint16_t (unsigned char / short)                -> 4-byte unsigned, as rpcgen
//   std::string                          -> remote_nonnull_string (string<REMOTE_STRING_MAX>)
//   std::optional<std::string>           -> remote_string (*string)
//   std::optional<T>                     -> optional pointer T*
//   Uuid                                 -> remote_uuid (opaque[16])
//   Array<T, N>                          -> T x<N>
//   CharArray<N> / FixedChars<N>         -> char x<N> / char x[N] (4 bytes per char)
//   TypedParam                           -> remote_typed_param
//   any struct with VS_XDR_FIELDS or a wire_fields(v, x) overload -> its fields in order
// Having a single list makes it impossible for encode and decode to disagree.
#pragma once

#include "rpc/driver_types.hh"

#include "util/result.hh"
#include "util/xdr.hh"

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace virtsnap::rpc {

// T x<Max>
template <typename T, uint32_t Max>
struct Array : std::vector<T> {
    Array() = default;
    Array(std::vector<T> v) : std::vector<T>(std::move(v)) {}
};

// char x<Max>
template <uint32_t Max>
struct CharArray {
    std::string value;
};

// char x[N]
template <uint32_t N>
struct FixedChars {
    std::string value;
};

#define VS_XDR_FIELDS(...)                                                     \
    template <typename V>                                                      \
    void fields(V &v_) { v_(__VA_ARGS__); }

// A message with no body (xdr_void).
struct Void {
    template <typename V>
    void fields(V &) {}
};

// Wire layouts of the driver's plain types (remote_nonnull_domain etc.).
template <typename V>
void wire_fields(V &v, DomainRef &d) { v(d.name, d.uuid, d.id); }
template <typename V>
void wire_fields(V &v, SnapshotRef &s) { v(s.name, s.dom); }
template <typename V>
void wire_fields(V &v, CheckpointRef &c) { v(c.name, c.dom); }

namespace detail {
template <typename T>
struct is_array : std::false_type {};
template <typename T, uint32_t M>
struct is_array<Array<T, M>> : std::true_type {
    static constexpr uint32_t max = M;
    using element = T;
};
template <typename T>
struct is_char_array : std::false_type {};
template <uint32_t M>
struct is_char_array<CharArray<M>> : std::true_type { static constexpr uint32_t max = M; };
template <typename T>
struct is_fixed_chars : std::false_type {};
template <uint32_t N>
struct is_fixed_chars<FixedChars<N>> : std::true_type { static constexpr uint32_t n = N; };
template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type { using element = T; };
template <typename T>
inline constexpr bool always_false = false;
}  // namespace detail

// Writes fields to an xdr::Encoder; errors (over-long strings) stay in the encoder.
class EncodeVisitor {
public:
    explicit EncodeVisitor(xdr::Encoder &e) : e_(e) {}
    template <typename... T>
    void operator()(T &...xs) { (one(xs), ...); }

    template <typename T>
    void one(T &x) {
        using U = std::remove_cv_t<T>;
        if constexpr (std::is_same_v<U, bool>) e_.put_bool(x);
        else if constexpr (std::is_same_v<U, int32_t>) e_.put_int(x);
        else if constexpr (std::is_same_v<U, uint32_t> || std::is_same_v<U, uint8_t> ||
                           std::is_same_v<U, uint16_t>) e_.put_uint(x);
        else if constexpr (std::is_same_v<U, int64_t>) e_.put_hyper(x);
        else if constexpr (std::is_same_v<U, uint64_t>) e_.put_uhyper(x);
        else if constexpr (std::is_same_v<U, double>) e_.put_double(x);
        else if constexpr (std::is_same_v<U, std::string>) e_.put_string(x);
        else if constexpr (std::is_same_v<U, std::optional<std::string>>) e_.put_optional_string(x);
        else if constexpr (std::is_same_v<U, Uuid>) e_.put_opaque_fixed(x.bytes);
        else if constexpr (std::is_same_v<U, TypedParam>) typed_param(x);
        else if constexpr (detail::is_char_array<U>::value) e_.put_char_array(x.value, detail::is_char_array<U>::max);
        else if constexpr (detail::is_fixed_chars<U>::value) e_.put_char_fixed(x.value, detail::is_fixed_chars<U>::n);
        else if constexpr (detail::is_array<U>::value) {
            e_.put_count(x.size(), detail::is_array<U>::max);
            if (x.size() <= detail::is_array<U>::max)
                for (auto &el : x) one(el);
        } else if constexpr (detail::is_optional<U>::value) {
            e_.put_bool(x.has_value());
            if (x) one(*x);
        } else if constexpr (requires { x.fields(*this); }) x.fields(*this);
        else if constexpr (requires { wire_fields(*this, x); }) wire_fields(*this, x);
        else static_assert(detail::always_false<U>, "no XDR mapping for this type");
    }

private:
    void typed_param(TypedParam &p);
    xdr::Encoder &e_;
};

// Reads fields from an xdr::Decoder, stopping at the first error.
class DecodeVisitor {
public:
    explicit DecodeVisitor(xdr::Decoder &d) : d_(d) {}
    template <typename... T>
    void operator()(T &...xs) { (one(xs), ...); }
    const Status &status() const { return status_; }

    template <typename T>
    void one(T &x) {
        using U = std::remove_cv_t<T>;
        if (!status_) return;
        if constexpr (std::is_same_v<U, bool>) take(d_.get_bool(), x);
        else if constexpr (std::is_same_v<U, int32_t>) take(d_.get_int(), x);
        else if constexpr (std::is_same_v<U, uint32_t>) take(d_.get_uint(), x);
        else if constexpr (std::is_same_v<U, uint8_t> || std::is_same_v<U, uint16_t>) {
            uint32_t v = 0;
            take(d_.get_uint(), v);
            x = U(v);
        } else if constexpr (std::is_same_v<U, int64_t>) take(d_.get_hyper(), x);
        else if constexpr (std::is_same_v<U, uint64_t>) take(d_.get_uhyper(), x);
        else if constexpr (std::is_same_v<U, double>) take(d_.get_double(), x);
        else if constexpr (std::is_same_v<U, std::string>) take(d_.get_string(), x);
        else if constexpr (std::is_same_v<U, std::optional<std::string>>) take(d_.get_optional_string(), x);
        else if constexpr (std::is_same_v<U, Uuid>) keep(d_.get_opaque_fixed(x.bytes));
        else if constexpr (std::is_same_v<U, TypedParam>) typed_param(x);
        else if constexpr (detail::is_char_array<U>::value) take(d_.get_char_array(detail::is_char_array<U>::max), x.value);
        else if constexpr (detail::is_fixed_chars<U>::value) take(d_.get_char_fixed(detail::is_fixed_chars<U>::n), x.value);
        else if constexpr (detail::is_array<U>::value) {
            // Every XDR element takes at least 4 bytes: the count is bounded by
            // the input before anything is allocated.
            uint32_t n = 0;
            take(d_.get_count(detail::is_array<U>::max, 4), n);
            x.clear();
            for (uint32_t i = 0; i < n && status_; i++) {
                x.emplace_back();
                one(x.back());
            }
        } else if constexpr (detail::is_optional<U>::value) {
            bool present = false;
            take(d_.get_bool(), present);
            if (!status_) return;
            if (present) {
                x.emplace();
                one(*x);
            } else {
                x.reset();
            }
        } else if constexpr (requires { x.fields(*this); }) x.fields(*this);
        else if constexpr (requires { wire_fields(*this, x); }) wire_fields(*this, x);
        else static_assert(detail::always_false<U>, "no XDR mapping for this type");
    }

private:
    template <typename R, typename T>
    void take(R &&r, T &out) {
        if (r) out = std::move(r).value();
        else status_ = Unexpected{std::move(r).error()};
    }
    void keep(Status s) {
        if (!s) status_ = std::move(s);
    }
    void typed_param(TypedParam &p);
    xdr::Decoder &d_;
    Status status_;
};

// Encodes a message body; fails if a field broke its declared bound.
template <typename T>
Status encode(xdr::Encoder &e, const T &msg) {
    EncodeVisitor v(e);
    // The visitor only reads; fields() is non-const because decoding shares it.
    v.one(const_cast<T &>(msg));
    return e.status();
}

// Decodes a message body from the whole input (trailing bytes are ignored, as libvirt does).
template <typename T>
Result<T> decode(std::span<const uint8_t> in) {
    xdr::Decoder d(in);
    DecodeVisitor v(d);
    T msg{};
    v.one(msg);
    if (!v.status()) return Unexpected{v.status().error()};
    return msg;
}

}  // namespace virtsnap::rpc
