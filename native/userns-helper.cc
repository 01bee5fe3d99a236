// podnet-userns: the helper that holds an unprivileged user's user and
// network namespaces and opens sockets inside them for its owner (see
// src/rootless/userns/userns.ts, which starts it, for why a process).
//
//   podnet-userns create      unshare(CLONE_NEWUSER | CLONE_NEWNET), this
//                             user mapped to root, as `unshare --user
//                             --map-root-user --net` does
//   podnet-userns join PID    setns into PID's user, then network namespace,
//                             as `nsenter --preserve-credentials --user --net
//                             --target PID` does
//
// A plain executable rather than Node behind unshare(1): the kernel refuses
// CLONE_NEWUSER to a multithreaded process, so the helper must be its own
// process, and a small static one starts in a millisecond where Node took
// tens. It stays single-threaded: unshare and setns of a user namespace need
// that, and nothing here needs more.
//
// Its only link to its owner is fd 3, a SOCK_SEQPACKET socket: it says it is
// ready (its pid), then answers one request at a time (sockets opened here,
// sent back with SCM_RIGHTS) and exits 0 when the owner's end closes, so it
// never outlives the process that made it. The messages are declared in
// src/rootless/userns/protocol.ts; the layout below must agree with it (the
// unit tests drive this binary through that module). Requests are input:
// anything malformed gets an EINVAL reply and the helper goes on serving.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kChannel = 3;
constexpr uint32_t kVersion = 1;
// Request: version, domain, type, protocol, count (int32 LE each), then an
// optional raw sockaddr to bind every socket to.
constexpr size_t kRequestHeader = 20;
constexpr size_t kMaxSockaddr = sizeof(sockaddr_storage);
// The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD).
constexpr uint32_t kMaxFds = 253;
// Reply: version, errno (0: success), pid (the first message only), then on
// failure the name of the call that failed.
constexpr size_t kReplyHeader = 12;
constexpr size_t kMaxSyscallName = 16;

[[noreturn]] void Die(const char* what, int err) {
  fprintf(stderr, "podnet-userns: %s: %s\n", what, strerror(err));
  _exit(1);
}

void PutU32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint32_t GetU32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// One reply; the fds (if any) stay open here. A send that fails means the
// owner is gone: nothing is left to serve.
void Reply(int err, uint32_t pid, const char* syscall, const int* fds, uint32_t nfds) {
  unsigned char buf[kReplyHeader + kMaxSyscallName];
  PutU32(buf, kVersion);
  PutU32(buf + 4, static_cast<uint32_t>(err));
  PutU32(buf + 8, pid);
  size_t len = kReplyHeader;
  if (err != 0) {
    size_t n = strnlen(syscall, kMaxSyscallName);
    memcpy(buf + len, syscall, n);
    len += n;
  }
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds > 0) {
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(kChannel, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) _exit(errno == EPIPE || errno == ECONNRESET ? 0 : 1);
}

void CloseAll(const int* fds, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) close(fds[i]);
}

// Opens what one request asks for and answers it: all the sockets, or an
// errno and the call that failed (with none of them kept).
void Serve(const unsigned char* req, size_t len) {
  if (len < kRequestHeader || len > kRequestHeader + kMaxSockaddr || GetU32(req) != kVersion) {
    Reply(EINVAL, 0, "request", nullptr, 0);
    return;
  }
  // The kernel checks domain, type and protocol itself; only the count
  // bounds what this side does.
  int domain = static_cast<int>(GetU32(req + 4));
  int type = static_cast<int>(GetU32(req + 8));
  int protocol = static_cast<int>(GetU32(req + 12));
  uint32_t count = GetU32(req + 16);
  const sockaddr* addr = reinterpret_cast<const sockaddr*>(req + kRequestHeader);
  socklen_t addrlen = static_cast<socklen_t>(len - kRequestHeader);
  if (count == 0 || count > kMaxFds) {
    Reply(EINVAL, 0, "request", nullptr, 0);
    return;
  }
  int fds[kMaxFds];
  for (uint32_t i = 0; i < count; i++) {
    fds[i] = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fds[i] < 0) {
      int e = errno;
      CloseAll(fds, i);
      Reply(e, 0, "socket", nullptr, 0);
      return;
    }
    if (addrlen > 0) {
      // A listener bound again right after its predecessor closed must not
      // wait for TIME_WAIT (what net.Server does on the host).
      int one = 1;
      if (type == SOCK_STREAM) setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fds[i], addr, addrlen) != 0) {
        int e = errno;
        CloseAll(fds, i + 1);
        Reply(e, 0, "bind", nullptr, 0);
        return;
      }
    }
  }
  Reply(0, 0, nullptr, fds, count);
  CloseAll(fds, count);
}

void WriteFile(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) Die(path, errno);
  size_t len = strlen(text);
  ssize_t n = write(fd, text, len);
  int e = errno;
  close(fd);
  if (n != static_cast<ssize_t>(len)) Die(path, n < 0 ? e : EIO);
}

// New user and network namespaces, this process's effective uid and gid
// mapped to root in the user one and setgroups denied (which an
// unprivileged gid_map requires): `unshare --user --map-root-user --net`.
void Create() {
  uid_t uid = geteuid();  // before unshare: unmapped ids read as the overflow id after
  gid_t gid = getegid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) Die("unshare failed", errno);
  char map[64];
  WriteFile("/proc/self/setgroups", "deny");
  snprintf(map, sizeof map, "0 %u 1", static_cast<unsigned>(uid));
  WriteFile("/proc/self/uid_map", map);
  snprintf(map, sizeof map, "0 %u 1", static_cast<unsigned>(gid));
  WriteFile("/proc/self/gid_map", map);
}

// Only fds 0-3 are meant for this process. Anything else it inherited (an
// fd some ancestor opened without O_CLOEXEC) would be held as long as the
// namespaces are: a pipe's write end kept here, say, keeps another
// process's reader from its end of file.
void CloseInherited() {
  if (syscall(SYS_close_range, kChannel + 1, ~0U, 0) == 0) return;
  rlimit lim{};
  rlim_t max = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? lim.rlim_cur : 65536;
  for (rlim_t fd = kChannel + 1; fd < max; fd++) close(static_cast<int>(fd));
}

bool SameNamespace(int fd, const char* own) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(own, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// PID's user namespace, then its network namespace (joining the user
// namespace first gives the capabilities the second setns needs), keeping
// this process's credentials: `nsenter --preserve-credentials --user --net
// --target PID`. A namespace this process is already in is skipped, as
// nsenter does (setns refuses to re-enter one's own user namespace).
void Join(const char* arg) {
  char* end = nullptr;
  errno = 0;
  long pid = strtol(arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || pid <= 0 || pid > 0x3fffffff) {
    fprintf(stderr, "podnet-userns: join: '%s' is not a process id\n", arg);
    _exit(2);
  }
  char user[48], net[48];
  snprintf(user, sizeof user, "/proc/%ld/ns/user", pid);
  snprintf(net, sizeof net, "/proc/%ld/ns/net", pid);
  // Both opened before either is entered: after the first setns, /proc/PID
  // could already name another process.
  int userfd = open(user, O_RDONLY | O_CLOEXEC);
  if (userfd < 0) Die(user, errno);
  int netfd = open(net, O_RDONLY | O_CLOEXEC);
  if (netfd < 0) Die(net, errno);
  if (!SameNamespace(userfd, "/proc/self/ns/user") && setns(userfd, CLONE_NEWUSER) != 0)
    Die("setns of the user namespace failed", errno);
  if (!SameNamespace(netfd, "/proc/self/ns/net") && setns(netfd, CLONE_NEWNET) != 0)
    Die("setns of the network namespace failed", errno);
  close(userfd);
  close(netfd);
}

}  // namespace

int main(int argc, char** argv) {
  bool create = argc == 2 && strcmp(argv[1], "create") == 0;
  bool join = argc == 3 && strcmp(argv[1], "join") == 0;
  if (!create && !join) {
    fprintf(stderr, "usage: podnet-userns create | podnet-userns join PID (started by podnet)\n");
    return 2;
  }
  int type = 0;
  socklen_t tlen = sizeof type;
  if (getsockopt(kChannel, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_SEQPACKET) {
    fprintf(stderr, "podnet-userns: fd 3 is not the SOCK_SEQPACKET socket podnet passes\n");
    return 2;
  }
  // Signals meant for the owner's terminal must not take the namespaces away
  // under it: the owner ends this helper by closing the channel.
  signal(SIGINT, SIG_IGN);
  // Its stderr is a pipe the owner stops reading once it has started: a
  // late error line must not turn an exit 1 into death by SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  CloseInherited();
  if (create) Create();
  else Join(argv[2]);

  Reply(0, static_cast<uint32_t>(getpid()), nullptr, nullptr, 0);
  for (;;) {
    // One byte more than the longest request, so a longer one is seen as such.
    unsigned char buf[kRequestHeader + kMaxSockaddr + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
      n = recvmsg(kChannel, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    // A reset is the owner gone with a reply of this helper unread.
    if (n < 0 && errno == ECONNRESET) return 0;
    if (n < 0) Die("recvmsg", errno);
    // Requests carry no fds: any that came are closed unread.
    bool fds = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      fds = true;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        close(fd);
      }
    }
    if (n == 0 && !fds) return 0;  // the owner is gone
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
      Reply(EINVAL, 0, "request", nullptr, 0);
      continue;
    }
    Serve(buf, static_cast<size_t>(n));
  }
}
