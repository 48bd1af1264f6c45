// remote_protocol.hh - the REMOTE program's procedure numbers and the argument,
// return and event bodies virtsnap serves, in the field order of libvirt's
// src/remote/remote_protocol.x (9.0). Each struct lists its fields once with
// VS_XDR_FIELDS; see xdr_fields.hh for the type mapping.
#pragma once

#include "rpc/driver_types.hh"
#include "rpc/xdr_fields.hh"

#include <cstdint>
#include <optional>
#include <string>

namespace virtsnap::rpc {

// Limits from remote_protocol.x.
inline constexpr uint32_t kDomainListMax = 16384;
inline constexpr uint32_t kSnapshotListMax = 16384;
inline constexpr uint32_t kCheckpointListMax = 16384;
inline constexpr uint32_t kAuthTypeListMax = 20;
inline constexpr uint32_t kJobStatsMax = 64;
inline constexpr uint32_t kBlockCopyParametersMax = 16;
inline constexpr uint32_t kDomainMessagesMax = 2048;
inline constexpr uint32_t kSecurityModelMax = 257;   // VIR_SECURITY_MODEL_BUFLEN
inline constexpr uint32_t kSecurityDoiMax = 257;     // VIR_SECURITY_DOI_BUFLEN
inline constexpr uint32_t kSecurityLabelMax = 4097;  // VIR_SECURITY_LABEL_BUFLEN
inline constexpr uint32_t kNodeDeviceNameListMax = 65536;
inline constexpr uint32_t kNetworkListMax = 16384;
inline constexpr uint32_t kStoragePoolListMax = 16384;

inline constexpr int32_t kAuthNone = 0;  // REMOTE_AUTH_NONE

// REMOTE program procedures that virtsnap knows by name (remote_procedure).
enum Proc : int32_t {
    kProcConnectOpen = 1,
    kProcConnectClose = 2,
    kProcConnectGetType = 3,
    kProcConnectGetVersion = 4,
    kProcNodeGetInfo = 6,
    kProcConnectGetCapabilities = 7,
    kProcDomainCreate = 9,
    kProcDomainDefineXml = 11,
    kProcDomainDestroy = 12,
    kProcDomainGetXmlDesc = 14,
    kProcDomainGetAutostart = 15,
    kProcDomainGetInfo = 16,
    kProcDomainGetOsType = 19,
    kProcDomainLookupById = 22,
    kProcDomainLookupByName = 23,
    kProcDomainLookupByUuid = 24,
    kProcDomainReboot = 27,
    kProcDomainResume = 28,
    kProcDomainSetAutostart = 29,
    kProcDomainShutdown = 33,
    kProcDomainSuspend = 34,
    kProcDomainUndefine = 35,
    kProcConnectNumOfNetworks = 52,
    kProcDomainRestore = 54,
    kProcDomainSave = 55,
    kProcConnectGetHostname = 59,
    kProcConnectSupportsFeature = 60,
    kProcAuthList = 66,
    kProcDomainEventLifecycle = 107,
    kProcConnectGetUri = 110,
    kProcNodeNumOfDevices = 111,
    kProcNodeListDevices = 112,
    kProcDomainGetSecurityLabel = 121,
    kProcNodeGetSecurityModel = 122,
    kProcConnectIsSecure = 149,
    kProcDomainIsActive = 150,
    kProcDomainIsPersistent = 151,
    kProcConnectGetLibVersion = 157,
    kProcDomainGetJobInfo = 163,
    kProcDomainAbortJob = 164,
    kProcConnectDomainEventRegisterAny = 167,
    kProcConnectDomainEventDeregisterAny = 168,
    kProcDomainManagedSave = 182,
    kProcDomainHasManagedSaveImage = 183,
    kProcDomainManagedSaveRemove = 184,
    kProcDomainSnapshotCreateXml = 185,
    kProcDomainSnapshotGetXmlDesc = 186,
    kProcDomainSnapshotNum = 187,
    kProcDomainSnapshotListNames = 188,
    kProcDomainSnapshotLookupByName = 189,
    kProcDomainHasCurrentSnapshot = 190,
    kProcDomainSnapshotCurrent = 191,
    kProcDomainRevertToSnapshot = 192,
    kProcDomainSnapshotDelete = 193,
    kProcDomainGetBlockInfo = 194,
    kProcDomainCreateWithFlags = 196,
    kProcDomainGetState = 212,
    kProcDomainUndefineFlags = 231,
    kProcDomainSaveFlags = 232,
    kProcDomainRestoreFlags = 233,
    kProcDomainDestroyFlags = 234,
    kProcDomainBlockJobAbort = 237,
    kProcDomainGetBlockJobInfo = 238,
    kProcDomainBlockJobSetSpeed = 239,
    kProcDomainBlockPull = 240,
    kProcDomainEventBlockJob = 241,
    kProcDomainSnapshotGetParent = 244,
    kProcDomainSnapshotNumChildren = 246,
    kProcDomainSnapshotListChildrenNames = 247,
    kProcDomainShutdownFlags = 258,
    kProcDomainBlockRebase = 266,
    kProcDomainSnapshotIsCurrent = 271,
    kProcDomainSnapshotHasMetadata = 272,
    kProcConnectListAllDomains = 273,
    kProcDomainListAllSnapshots = 274,
    kProcDomainSnapshotListAllChildren = 275,
    kProcConnectListAllStoragePools = 281,
    kProcConnectListAllNetworks = 283,
    kProcConnectListAllNodeDevices = 285,
    kProcDomainBlockCommit = 290,
    kProcDomainGetJobStats = 298,
    kProcConnectDomainEventCallbackRegisterAny = 316,
    kProcConnectDomainEventCallbackDeregisterAny = 317,
    kProcDomainEventCallbackLifecycle = 318,
    kProcDomainEventCallbackBlockJob = 326,
    kProcDomainEventBlockJob2 = 339,
    kProcDomainBlockCopy = 345,
    kProcDomainDefineXmlFlags = 350,
    kProcConnectRegisterCloseCallback = 360,
    kProcConnectUnregisterCloseCallback = 361,
    kProcDomainEventCallbackJobCompleted = 363,
    kProcDomainCheckpointCreateXml = 411,
    kProcDomainCheckpointGetXmlDesc = 412,
    kProcDomainListAllCheckpoints = 413,
    kProcDomainCheckpointListAllChildren = 414,
    kProcDomainCheckpointLookupByName = 415,
    kProcDomainCheckpointGetParent = 416,
    kProcDomainCheckpointDelete = 417,
    kProcDomainBackupBegin = 421,
    kProcDomainBackupGetXmlDesc = 422,
    kProcDomainGetMessages = 426,
    kProcDomainAbortJobFlags = 442,
};

// remote_error: what an error reply carries.
struct RemoteError {
    int32_t code = 0;
    int32_t domain = 0;
    std::optional<std::string> message;
    int32_t level = 2;  // VIR_ERR_ERROR
    std::optional<DomainRef> dom;
    std::optional<std::string> str1, str2, str3;
    int32_t int1 = 0, int2 = 0;
    std::optional<DomainRef> net;  // remote_network has the same shape; always absent
    VS_XDR_FIELDS(code, domain, message, level, dom, str1, str2, str3, int1, int2, net)
};

// ---- Bodies shared by many procedures ----
struct DomArgs { DomainRef dom; VS_XDR_FIELDS(dom) };
struct DomFlagsArgs { DomainRef dom; uint32_t flags = 0; VS_XDR_FIELDS(dom, flags) };
struct SnapFlagsArgs { SnapshotRef snap; uint32_t flags = 0; VS_XDR_FIELDS(snap, flags) };
struct CheckpointFlagsArgs { CheckpointRef checkpoint; uint32_t flags = 0; VS_XDR_FIELDS(checkpoint, flags) };
struct DomRet { DomainRef dom; VS_XDR_FIELDS(dom) };
struct SnapRet { SnapshotRef snap; VS_XDR_FIELDS(snap) };
struct CheckpointRet { CheckpointRef checkpoint; VS_XDR_FIELDS(checkpoint) };
struct IntRet { int32_t value = 0; VS_XDR_FIELDS(value) };
struct UHyperRet { uint64_t value = 0; VS_XDR_FIELDS(value) };
struct StringRet { std::string value; VS_XDR_FIELDS(value) };
struct NeedResultsArgs { int32_t need_results = 0; uint32_t flags = 0; VS_XDR_FIELDS(need_results, flags) };
struct PathFlagsArgs { DomainRef dom; std::string path; uint32_t flags = 0; VS_XDR_FIELDS(dom, path, flags) };

// ---- Connection ----
struct AuthListRet { Array<int32_t, kAuthTypeListMax> types; VS_XDR_FIELDS(types) };
struct SupportsFeatureArgs { int32_t feature = 0; VS_XDR_FIELDS(feature) };
struct ConnectOpenArgs { std::optional<std::string> name; uint32_t flags = 0; VS_XDR_FIELDS(name, flags) };
struct NodeGetInfoRet {
    FixedChars<32> model;
    uint64_t memory = 0;
    int32_t cpus = 0, mhz = 0, nodes = 0, sockets = 0, cores = 0, threads = 0;
    VS_XDR_FIELDS(model, memory, cpus, mhz, nodes, sockets, cores, threads)
};
struct NodeGetSecurityModelRet {
    CharArray<kSecurityModelMax> model;
    CharArray<kSecurityDoiMax> doi;
    VS_XDR_FIELDS(model, doi)
};
struct ListAllDomainsRet {
    Array<DomainRef, kDomainListMax> domains;
    uint32_t ret = 0;
    VS_XDR_FIELDS(domains, ret)
};
// Empty answers for the non-domain object kinds virt-manager lists at start-up.
struct NodeNumOfDevicesArgs { std::optional<std::string> cap; uint32_t flags = 0; VS_XDR_FIELDS(cap, flags) };
struct NodeListDevicesArgs {
    std::optional<std::string> cap;
    int32_t maxnames = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(cap, maxnames, flags)
};
struct NamesRet { Array<std::string, kNodeDeviceNameListMax> names; VS_XDR_FIELDS(names) };
// remote_nonnull_network / storage_pool / node_device never appear: the lists are empty.
struct EmptyListRet { Array<int32_t, 0> items; uint32_t ret = 0; VS_XDR_FIELDS(items, ret) };

// ---- Domains ----
struct LookupByNameArgs { std::string name; VS_XDR_FIELDS(name) };
struct LookupByUuidArgs { Uuid uuid; VS_XDR_FIELDS(uuid) };
struct LookupByIdArgs { int32_t id = 0; VS_XDR_FIELDS(id) };
struct DomainGetStateRet { int32_t state = 0; int32_t reason = 0; VS_XDR_FIELDS(state, reason) };
struct DomainGetInfoRet {
    uint8_t state = 0;  // unsigned char: 4 bytes on the wire
    uint64_t max_mem = 0;
    uint64_t memory = 0;
    uint16_t nr_virt_cpu = 0;  // unsigned short: 4 bytes on the wire
    uint64_t cpu_time = 0;
    VS_XDR_FIELDS(state, max_mem, memory, nr_virt_cpu, cpu_time)
};
struct DomainGetSecurityLabelRet {
    CharArray<kSecurityLabelMax> label;
    int32_t enforcing = 0;
    VS_XDR_FIELDS(label, enforcing)
};
struct DomainGetMessagesRet { Array<std::string, kDomainMessagesMax> msgs; VS_XDR_FIELDS(msgs) };
struct DefineXmlArgs { std::string xml; VS_XDR_FIELDS(xml) };
struct DefineXmlFlagsArgs { std::string xml; uint32_t flags = 0; VS_XDR_FIELDS(xml, flags) };
struct SetAutostartArgs { DomainRef dom; int32_t autostart = 0; VS_XDR_FIELDS(dom, autostart) };
struct DomainGetBlockInfoRet {
    uint64_t allocation = 0, capacity = 0, physical = 0;
    VS_XDR_FIELDS(allocation, capacity, physical)
};
struct DomainSaveArgs { DomainRef dom; std::string to; VS_XDR_FIELDS(dom, to) };
struct DomainSaveFlagsArgs {
    DomainRef dom;
    std::string to;
    std::optional<std::string> dxml;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, to, dxml, flags)
};
struct DomainRestoreArgs { std::string from; VS_XDR_FIELDS(from) };
struct DomainRestoreFlagsArgs {
    std::string from;
    std::optional<std::string> dxml;
    uint32_t flags = 0;
    VS_XDR_FIELDS(from, dxml, flags)
};

// ---- Jobs ----
struct DomainGetJobInfoRet {
    int32_t type = 0;
    uint64_t time_elapsed = 0, time_remaining = 0;
    uint64_t data_total = 0, data_processed = 0, data_remaining = 0;
    uint64_t mem_total = 0, mem_processed = 0, mem_remaining = 0;
    uint64_t file_total = 0, file_processed = 0, file_remaining = 0;
    VS_XDR_FIELDS(type, time_elapsed, time_remaining, data_total, data_processed, data_remaining,
                  mem_total, mem_processed, mem_remaining, file_total, file_processed, file_remaining)
};
struct DomainGetJobStatsRet {
    int32_t type = 0;
    Array<TypedParam, kJobStatsMax> params;
    VS_XDR_FIELDS(type, params)
};

// ---- Snapshots ----
struct SnapshotCreateXmlArgs {
    DomainRef dom;
    std::string xml_desc;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, xml_desc, flags)
};
struct SnapshotListNamesArgs {
    DomainRef dom;
    int32_t maxnames = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, maxnames, flags)
};
struct SnapshotNamesRet { Array<std::string, kSnapshotListMax> names; VS_XDR_FIELDS(names) };
struct SnapshotLookupByNameArgs {
    DomainRef dom;
    std::string name;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, name, flags)
};
struct SnapshotListChildrenNamesArgs {
    SnapshotRef snap;
    int32_t maxnames = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(snap, maxnames, flags)
};
struct ListAllSnapshotsArgs {
    DomainRef dom;
    int32_t need_results = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, need_results, flags)
};
struct SnapshotListAllChildrenArgs {
    SnapshotRef snapshot;
    int32_t need_results = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(snapshot, need_results, flags)
};
struct SnapshotListRet {
    Array<SnapshotRef, kSnapshotListMax> snapshots;
    int32_t ret = 0;
    VS_XDR_FIELDS(snapshots, ret)
};

// ---- Checkpoints and backup ----
struct CheckpointCreateXmlArgs {
    DomainRef dom;
    std::string xml_desc;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, xml_desc, flags)
};
struct ListAllCheckpointsArgs {
    DomainRef dom;
    int32_t need_results = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, need_results, flags)
};
struct CheckpointListAllChildrenArgs {
    CheckpointRef checkpoint;
    int32_t need_results = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(checkpoint, need_results, flags)
};
struct CheckpointListRet {
    Array<CheckpointRef, kCheckpointListMax> checkpoints;
    int32_t ret = 0;
    VS_XDR_FIELDS(checkpoints, ret)
};
struct CheckpointLookupByNameArgs {
    DomainRef dom;
    std::string name;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, name, flags)
};
struct BackupBeginArgs {
    DomainRef dom;
    std::string backup_xml;
    std::optional<std::string> checkpoint_xml;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, backup_xml, checkpoint_xml, flags)
};

// ---- Block jobs ----
struct BlockCopyArgs {
    DomainRef dom;
    std::string path;
    std::string destxml;
    Array<TypedParam, kBlockCopyParametersMax> params;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, path, destxml, params, flags)
};
struct BlockRebaseArgs {
    DomainRef dom;
    std::string path;
    std::optional<std::string> base;
    uint64_t bandwidth = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, path, base, bandwidth, flags)
};
struct BlockPullArgs {
    DomainRef dom;
    std::string path;
    uint64_t bandwidth = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, path, bandwidth, flags)
};
struct BlockCommitArgs {
    DomainRef dom;
    std::string disk;
    std::optional<std::string> base;
    std::optional<std::string> top;
    uint64_t bandwidth = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, disk, base, top, bandwidth, flags)
};
struct GetBlockJobInfoRet {
    int32_t found = 0;
    int32_t type = 0;
    uint64_t bandwidth = 0, cur = 0, end = 0;
    VS_XDR_FIELDS(found, type, bandwidth, cur, end)
};
struct BlockJobSetSpeedArgs {
    DomainRef dom;
    std::string path;
    uint64_t bandwidth = 0;
    uint32_t flags = 0;
    VS_XDR_FIELDS(dom, path, bandwidth, flags)
};

// ---- Events ----
struct CallbackRegisterAnyArgs {
    int32_t event_id = 0;
    std::optional<DomainRef> dom;  // filter; absent = every domain
    VS_XDR_FIELDS(event_id, dom)
};
struct CallbackRegisterAnyRet { int32_t callback_id = 0; VS_XDR_FIELDS(callback_id) };
struct CallbackDeregisterAnyArgs { int32_t callback_id = 0; VS_XDR_FIELDS(callback_id) };
struct RegisterAnyArgs { int32_t event_id = 0; VS_XDR_FIELDS(event_id) };

struct LifecycleMsg {
    DomainRef dom;
    int32_t event = 0;
    int32_t detail = 0;
    VS_XDR_FIELDS(dom, event, detail)
};
struct CallbackLifecycleMsg { int32_t callback_id = 0; LifecycleMsg msg; VS_XDR_FIELDS(callback_id, msg) };
struct BlockJobMsg {
    DomainRef dom;
    std::string path;
    int32_t type = 0;
    int32_t status = 0;
    VS_XDR_FIELDS(dom, path, type, status)
};
struct CallbackBlockJobMsg { int32_t callback_id = 0; BlockJobMsg msg; VS_XDR_FIELDS(callback_id, msg) };
struct BlockJob2Msg {
    int32_t callback_id = 0;
    DomainRef dom;
    std::string dst;
    int32_t type = 0;
    int32_t status = 0;
    VS_XDR_FIELDS(callback_id, dom, dst, type, status)
};
struct CallbackJobCompletedMsg {
    int32_t callback_id = 0;
    DomainRef dom;
    Array<TypedParam, kJobStatsMax> params;
    VS_XDR_FIELDS(callback_id, dom, params)
};

}  // namespace virtsnap::rpc
