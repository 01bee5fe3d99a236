// The decoder of a link's counters, shared by the two sockets that read
// them: the kept socket of native/netlink.cc (synchronous reads) and the
// event-loop channel of native/rtnl-channel.cc (asynchronous reads, sweeps).
#pragma once

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

}  // namespace podnet
