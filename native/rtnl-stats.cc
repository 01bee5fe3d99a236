#include "rtnl-stats.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstring>

namespace podnet {

int DecodeStats(const char* p, size_t len, double* out) {
  if (len < sizeof(nlmsghdr)) return kStatsMalformed;
  nlmsghdr h;
  memcpy(&h, p, sizeof h);
  if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > len) return kStatsMalformed;
  if (h.nlmsg_type == NLMSG_ERROR) {
    if (h.nlmsg_len < sizeof(nlmsghdr) + sizeof(int32_t)) return kStatsMalformed;
    int32_t code;
    memcpy(&code, p + sizeof(nlmsghdr), sizeof code);
    return code < 0 ? code : kStatsMissing;
  }
  size_t fixed;
  unsigned short want;
  if (h.nlmsg_type == RTM_NEWLINK) {
    fixed = sizeof(ifinfomsg);
    want = IFLA_STATS64;
  } else if (h.nlmsg_type == RTM_NEWSTATS) {
    fixed = sizeof(if_stats_msg);
    want = IFLA_STATS_LINK_64;
  } else {
    return kStatsMissing;
  }
  size_t off = sizeof(nlmsghdr) + NLMSG_ALIGN(fixed);
  const size_t end = h.nlmsg_len;
  if (off > end) return kStatsMalformed;
  // off + header <= end, not end - off >= header: RTA_ALIGN of an unaligned
  // last attribute steps up to 3 bytes past end, and end - off would then
  // wrap around as size_t and send the loop past the message.
  while (off + sizeof(rtattr) <= end) {
    rtattr a;
    memcpy(&a, p + off, sizeof a);
    if (a.rta_len < sizeof(rtattr) || a.rta_len > end - off) return kStatsMalformed;
    if ((a.rta_type & NLA_TYPE_MASK) == want) {
      size_t n = (a.rta_len - sizeof(rtattr)) / 8;
      if (n < kMinStatsFields) return kStatsMalformed;
      if (n > kStatsFields) n = kStatsFields;
      // One copy of the block, then the conversion: this runs on every
      // read. A copy of constant size is a few vector moves (a variable one
      // became rep movs, slow to start); only an older kernel's shorter
      // block takes the other way.
      const char* v = p + off + sizeof(rtattr);
      uint64_t x[kStatsFields];
      if (n == kStatsFields) {
        memcpy(x, v, sizeof x);
      } else {
        memset(x, 0, sizeof x);
        memcpy(x, v, n * 8);
      }
      for (size_t i = 0; i < kStatsFields; i++) out[i] = static_cast<double>(x[i]);
      return static_cast<int>(n);
    }
    off += RTA_ALIGN(a.rta_len);
  }
  return kStatsMissing;
}

ssize_t NetlinkSend(int fd, const void* req, size_t len, bool connected) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  long n = connected ? syscall(SYS_sendto, fd, req, len, 0, nullptr, 0)
                     : syscall(SYS_sendto, fd, req, len, 0, &kernel, sizeof kernel);
  return n < 0 ? -errno : n;
}

ssize_t NetlinkRecv(int fd, void* buf, size_t len, int flags) {
  long n = syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
  return n < 0 ? -errno : n;
}

}  // namespace podnet
