// The decoder of a link's counters, and the two system calls of a read,
// shared by the two sockets that read them: the kept socket of native/netlink.cc (synchronous reads) and the
// event-loop channel of native/rtnl-channel.cc (asynchronous reads, sweeps).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace podnet {

// DecodeStats results below zero that are not a kernel errno.
constexpr int kStatsMalformed = -1000000;
constexpr int kStatsMissing = -1000001;
constexpr size_t kStatsFields = 25;  // struct rtnl_link_stats64 as of Linux 6.x
constexpr size_t kMinStatsFields = 23;

// Reads the counters of the first message in [p, p+len) into out as doubles
// (exact below 2^53): an RTM_NEWLINK's IFLA_STATS64, or an RTM_NEWSTATS's
// IFLA_STATS_LINK_64 (the reply to RTM_GETSTATS). Returns the number of
// counters the kernel sent, -errno for a kernel error, or kStatsMalformed /
// kStatsMissing. Every length is checked against the bytes that are there.
// src/netns/rtnl.ts holds the same logic for bigint reads.
int DecodeStats(const char* p, size_t len, double* out);

// sendto(kernel) and recv on a netlink socket through syscall(2), -errno on
// failure. glibc's own wrappers are cancellation points: in a process with
// more than one thread (Node always is) each call enables and then disables
// asynchronous cancellation around the syscall, two atomic updates that
// perf put at 4-5% of a statistics read. podnet never cancels a thread.
// CONNECTED: the socket was connect()ed to the kernel, so the send names
// no address.
ssize_t NetlinkSend(int fd, const void* req, size_t len, bool connected = false);
ssize_t NetlinkRecv(int fd, void* buf, size_t len, int flags);

}  // namespace podnet
