#include "rtnl-stats.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

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
      const char* v = p + off + sizeof(rtattr);
      for (size_t i = 0; i < kStatsFields; i++) {
        uint64_t x = 0;
        if (i < n) memcpy(&x, v + i * 8, 8);
        out[i] = static_cast<double>(x);
      }
      return static_cast<int>(n);
    }
    off += RTA_ALIGN(a.rta_len);
  }
  return kStatsMissing;
}

}  // namespace podnet
