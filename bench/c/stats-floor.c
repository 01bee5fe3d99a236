// Floor for reading one interface's counters inside a network namespace.
//
//   stats-floor kept     NSPATH IFNAME BATCHES PER_BATCH
//       setns() into NSPATH once, keep one NETLINK_ROUTE socket, then
//       RTM_GETLINK by name in a loop (what linkStatsSync does).
//   stats-floor getstats NSPATH IFNAME BATCHES PER_BATCH
//       same kept socket, RTM_GETSTATS (IFLA_STATS_LINK_64 only): smaller reply.
//   stats-floor fresh    NSPATH IFNAME BATCHES PER_BATCH
//       per read: setns into NSPATH + socket + setns home, then RTM_GETLINK,
//       then close (no socket kept).
//   stats-floor sweep    IFNAME BATCHES NSPATH...
//       one kept socket per namespace (opened up front); one timed sweep reads
//       IFNAME once in every namespace (RTM_GETLINK, one round trip after the
//       other). PER_BATCH is 1 sweep.
//   stats-floor sweepstats IFNAME BATCHES NSPATH...
//       the same sockets; a sweep sends an RTM_GETSTATS (by the index found
//       in each namespace up front) on every socket, then reads every reply
//       (what podnet's StatsSweep did before it read each reply at once).
//   stats-floor sweepstats1 IFNAME BATCHES NSPATH...
//       the same, but each socket's reply read right after its request
//       (rtnetlink answers inside sendmsg): what podnet's StatsSweep does.
//
// Prints one JSON line: median and min per read (per sweep for `sweep`) in
// microseconds, over the batch medians.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "stats-floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int open_ns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  return fd;
}

static int rtnl_socket(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) die("socket");
  return fd;
}

static struct {
  struct nlmsghdr h;
  struct ifinfomsg i;
  char attrs[32];
} getlink;

static struct {
  struct nlmsghdr h;
  struct if_stats_msg s;
} getstats;

static char reply[64 * 1024];
static uint32_t seq;
static volatile uint64_t sink;

static void build_getlink(const char *ifname) {
  size_t nlen = strlen(ifname) + 1;
  struct rtattr *a = (struct rtattr *)getlink.attrs;
  a->rta_type = IFLA_IFNAME;
  a->rta_len = RTA_LENGTH(nlen);
  memcpy(RTA_DATA(a), ifname, nlen);
  getlink.h.nlmsg_len = NLMSG_LENGTH(sizeof getlink.i) + RTA_ALIGN(a->rta_len);
  getlink.h.nlmsg_type = RTM_GETLINK;
  getlink.h.nlmsg_flags = NLM_F_REQUEST;
}

static void build_getstats_into(void *buf, int ifindex) {
  struct nlmsghdr *h = buf;
  struct if_stats_msg *s = NLMSG_DATA(h);
  h->nlmsg_len = NLMSG_LENGTH(sizeof *s);
  h->nlmsg_type = RTM_GETSTATS;
  h->nlmsg_flags = NLM_F_REQUEST;
  s->ifindex = ifindex;
  s->filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
}

static void build_getstats(int ifindex) {
  getstats.h.nlmsg_len = NLMSG_LENGTH(sizeof getstats.s);
  getstats.h.nlmsg_type = RTM_GETSTATS;
  getstats.h.nlmsg_flags = NLM_F_REQUEST;
  getstats.s.ifindex = ifindex;
  getstats.s.filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
}

// Reads the reply to request SEQ on FD and the rx_bytes of its stats64 block.
static void collect_stats(int fd, uint32_t want) {
  ssize_t n;
  do n = recv(fd, reply, sizeof reply, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) die("recv");
  struct nlmsghdr *m = (struct nlmsghdr *)reply;
  if (!NLMSG_OK(m, (size_t)n) || m->nlmsg_seq != want || m->nlmsg_type != RTM_NEWSTATS) {
    errno = EBADMSG;
    die("reply");
  }
  struct rtattr *a = (struct rtattr *)((char *)NLMSG_DATA(m) + NLMSG_ALIGN(sizeof(struct if_stats_msg)));
  int left = (int)m->nlmsg_len - (int)NLMSG_LENGTH(sizeof(struct if_stats_msg));
  for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type == IFLA_STATS_LINK_64 && RTA_PAYLOAD(a) >= sizeof(struct rtnl_link_stats64)) {
      struct rtnl_link_stats64 s;
      memcpy(&s, RTA_DATA(a), sizeof s);
      sink += s.rx_bytes;
      return;
    }
  }
  errno = ENODATA;
  die("no stats attribute in reply");
}

// One round trip; returns the reply length. Walks the attributes to the
// stats64 block and reads rx_bytes, so the reply is really looked at.
static ssize_t transact(int fd, struct nlmsghdr *req, int want_stats_attr) {
  req->nlmsg_seq = ++seq;
  struct sockaddr_nl k = {.nl_family = AF_NETLINK};
  if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0) die("sendto");
  ssize_t n;
  do n = recv(fd, reply, sizeof reply, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) die("recv");
  struct nlmsghdr *m = (struct nlmsghdr *)reply;
  if (!NLMSG_OK(m, (size_t)n) || m->nlmsg_seq != seq) {
    errno = EBADMSG;
    die("reply");
  }
  if (m->nlmsg_type == NLMSG_ERROR) {
    errno = -((struct nlmsgerr *)NLMSG_DATA(m))->error;
    die("netlink");
  }
  size_t hdr = want_stats_attr == IFLA_STATS64 ? sizeof(struct ifinfomsg) : sizeof(struct if_stats_msg);
  struct rtattr *a = (struct rtattr *)((char *)NLMSG_DATA(m) + NLMSG_ALIGN(hdr));
  int left = (int)m->nlmsg_len - (int)NLMSG_LENGTH(hdr);
  for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type == want_stats_attr && RTA_PAYLOAD(a) >= sizeof(struct rtnl_link_stats64)) {
      struct rtnl_link_stats64 s;
      memcpy(&s, RTA_DATA(a), sizeof s);
      sink += s.rx_bytes;
      return n;
    }
  }
  errno = ENODATA;
  die("no stats attribute in reply");
  return -1;
}

static void print(const char *mode, double *batch_us, int batches, int per_batch, ssize_t reply_len) {
  double med = median(batch_us, batches);
  printf("{\"mode\":\"%s\",\"median_us\":%.3f,\"min_us\":%.3f,\"batches\":%d,\"per_batch\":%d,"
         "\"reply_bytes\":%zd}\n",
         mode, med, batch_us[0], batches, per_batch, reply_len);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: see the comment at the top of stats-floor.c\n");
    return 2;
  }
  const char *mode = argv[1];
  int home = open_ns("/proc/self/ns/net");

  if (strcmp(mode, "sweep") == 0 || strcmp(mode, "sweepstats") == 0 || strcmp(mode, "sweepstats1") == 0) {
    const char *ifname = argv[2];
    int batches = atoi(argv[3]);
    int nns = argc - 4;
    int *fds = malloc(sizeof(int) * nns);
    // One RTM_GETSTATS request per namespace (the index may differ).
    char (*reqs)[64] = calloc(nns, 64);
    for (int i = 0; i < nns; i++) {
      int nsfd = open_ns(argv[4 + i]);
      if (setns(nsfd, CLONE_NEWNET) != 0) die("setns");
      fds[i] = rtnl_socket();
      unsigned idx = if_nametoindex(ifname);
      if (idx == 0) die(ifname);
      build_getstats_into(reqs[i], (int)idx);
      close(nsfd);
    }
    if (setns(home, CLONE_NEWNET) != 0) die("setns home");
    // sweepstats sends every request, then reads every reply; sweepstats1
    // reads each reply right after its request (what podnet's sweep does).
    int interleaved = strcmp(mode, "sweepstats1") == 0;
    if (interleaved || strcmp(mode, "sweepstats") == 0) {
      double *t = malloc(sizeof(double) * batches);
      struct sockaddr_nl k = {.nl_family = AF_NETLINK};
      for (int b = -1; b < batches; b++) {  // sweep -1 is the warm-up
        double t0 = now_us();
        uint32_t s = ++seq;
        for (int i = 0; i < nns; i++) {
          struct nlmsghdr *h = (struct nlmsghdr *)reqs[i];
          h->nlmsg_seq = s;
          if (sendto(fds[i], h, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k) < 0) die("sendto");
          if (interleaved) collect_stats(fds[i], s);
        }
        if (!interleaved)
          for (int i = 0; i < nns; i++) collect_stats(fds[i], s);
        if (b >= 0) t[b] = now_us() - t0;
      }
      print(mode, t, batches, 1, 0);
      return 0;
    }
    build_getlink(ifname);
    double *t = malloc(sizeof(double) * batches);
    ssize_t len = 0;
    for (int i = 0; i < nns; i++) len = transact(fds[i], &getlink.h, IFLA_STATS64);  // warm-up
    for (int b = 0; b < batches; b++) {
      double t0 = now_us();
      for (int i = 0; i < nns; i++) transact(fds[i], &getlink.h, IFLA_STATS64);
      t[b] = now_us() - t0;
    }
    print("sweep", t, batches, 1, len);
    return 0;
  }

  if (argc < 6) {
    fprintf(stderr, "usage: see the comment at the top of stats-floor.c\n");
    return 2;
  }
  const char *nspath = argv[2], *ifname = argv[3];
  int batches = atoi(argv[4]), per_batch = atoi(argv[5]);
  double *t = malloc(sizeof(double) * batches);
  int nsfd = open_ns(nspath);
  ssize_t len = 0;

  if (strcmp(mode, "kept") == 0 || strcmp(mode, "getstats") == 0) {
    if (setns(nsfd, CLONE_NEWNET) != 0) die("setns");
    int fd = rtnl_socket();
    struct nlmsghdr *req;
    int attr;
    if (strcmp(mode, "kept") == 0) {
      build_getlink(ifname);
      req = &getlink.h;
      attr = IFLA_STATS64;
    } else {
      unsigned idx = if_nametoindex(ifname);
      if (idx == 0) die(ifname);
      build_getstats((int)idx);
      req = &getstats.h;
      attr = IFLA_STATS_LINK_64;
    }
    for (int i = 0; i < per_batch; i++) len = transact(fd, req, attr);  // warm-up
    for (int b = 0; b < batches; b++) {
      double t0 = now_us();
      for (int i = 0; i < per_batch; i++) transact(fd, req, attr);
      t[b] = (now_us() - t0) / per_batch;
    }
  } else if (strcmp(mode, "fresh") == 0) {
    build_getlink(ifname);
    for (int b = -1; b < batches; b++) {  // batch -1 is the warm-up
      double t0 = now_us();
      for (int i = 0; i < per_batch; i++) {
        if (setns(nsfd, CLONE_NEWNET) != 0) die("setns");
        int fd = rtnl_socket();
        if (setns(home, CLONE_NEWNET) != 0) die("setns home");
        len = transact(fd, &getlink.h, IFLA_STATS64);
        close(fd);
      }
      if (b >= 0) t[b] = (now_us() - t0) / per_batch;
    }
  } else {
    fprintf(stderr, "stats-floor: unknown mode %s\n", mode);
    return 2;
  }
  print(mode, t, batches, per_batch, len);
  return 0;
}
