// xdr_fields.cc - the one hand-written wire layout: remote_typed_param, whose
// value is a union switched on the parameter type.

#include "rpc/xdr_fields.hh"

namespace virtsnap::rpc {

namespace {
// VIR_TYPED_PARAM_INT .. VIR_TYPED_PARAM_STRING are the variant indexes + 1.
constexpr int32_t kFirstType = 1;
constexpr int32_t kLastType = int32_t(std::variant_size_v<TypedValue>);
}  // namespace

void EncodeVisitor::typed_param(TypedParam &p) {
    e_.put_string(p.field);
    e_.put_int(int32_t(p.value.index()) + kFirstType);
    std::visit([this](auto &v) { one(v); }, p.value);
}

void DecodeVisitor::typed_param(TypedParam &p) {
    int32_t type = 0;
    take(d_.get_string(), p.field);
    take(d_.get_int(), type);
    if (!status_) return;
    switch (type) {
    case 1: { int32_t v = 0; one(v); p.value = v; break; }
    case 2: { uint32_t v = 0; one(v); p.value = v; break; }
    case 3: { int64_t v = 0; one(v); p.value = v; break; }
    case 4: { uint64_t v = 0; one(v); p.value = v; break; }
    case 5: { double v = 0; one(v); p.value = v; break; }
    case 6: {
        // rpcgen carries BOOLEAN as an int; any non-zero value is true.
        int32_t v = 0;
        one(v);
        p.value = v != 0;
        break;
    }
    case 7: { std::string v; one(v); p.value = std::move(v); break; }
    default:
        status_ = fail(xdr::decode_error("unknown typed parameter type"));
        break;
    }
    static_assert(kLastType == 7, "typed parameter types are INT..STRING");
}

}  // namespace virtsnap::rpc
