// The fd primitives of the addon, in one place: close and dup, what kind
// of socket an fd is, a lock file, and passing fds between processes over a
// SOCK_SEQPACKET unix socket (SCM_RIGHTS). An unprivileged process cannot
// enter the network namespace of its own user namespace (setns needs
// CAP_SYS_ADMIN in the initial user namespace too), so a helper process
// living inside (userns-helper.cc) opens the sockets there and sends them
// out; a socket keeps the namespace it was opened in.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"

namespace podnet {
namespace {

// The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD).
constexpr size_t kMaxFds = 253;
// Messages are small JSON headers; anything longer is a protocol error.
constexpr size_t kMaxMessage = 64 * 1024;

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// seqpacketPair(): [a, b], both O_CLOEXEC. One end is given to a child as
// one of its stdio fds (spawn dup2()s it, which clears O_CLOEXEC there).
Napi::Value JsPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return OutcomeToValue(info.Env(), Outcome::Fail(errno, "socketpair"));
  }
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  out.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return out;
}

// sendFds(sock, data, fds?): one message, synchronously. The fds stay open
// here (the receiver gets duplicates); the caller closes its own.
Napi::Value JsSend(const Napi::CallbackInfo& info) {
  int sock = info[0].As<Napi::Number>().Int32Value();
  auto data = info[1].As<Napi::Buffer<char>>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  if (fds.size() > kMaxFds || data.Length() > kMaxMessage) {
    return OutcomeToValue(info.Env(), Outcome::Fail(EMSGSIZE, "sendmsg"));
  }
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return OutcomeToValue(info.Env(), Outcome::Fail(errno, "sendmsg"));
  return info.Env().Undefined();
}

// recvFds on the libuv pool: waits (poll, with a deadline) for one message.
// Nothing here changes namespace, so the pool is the right place.
class RecvWorker : public Napi::AsyncWorker {
 public:
  RecvWorker(Napi::Env env, int sock, int timeout_ms)
      : Napi::AsyncWorker(env, "podnet:recvFds"),
        sock_(sock),
        timeout_ms_(timeout_ms),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    pollfd p{sock_, POLLIN, 0};
    int rc;
    do {
      rc = poll(&p, 1, timeout_ms_);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      out_ = Outcome::Fail(errno, "poll");
      return;
    }
    if (rc == 0) {
      out_ = Outcome::Fail(ETIMEDOUT, "recvmsg");
      return;
    }
    data_.resize(kMaxMessage);
    iovec iov{data_.data(), data_.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n;
    do {
      n = recvmsg(sock_, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      out_ = Outcome::Fail(errno, "recvmsg");
      return;
    }
    data_.resize(static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* p0 = CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, p0 + i * sizeof(int), sizeof fd);
        fds_.push_back(fd);
      }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
      CloseAll(fds_);
      fds_.clear();
      out_ = Outcome::Fail(EMSGSIZE, "recvmsg");
      return;
    }
    eof_ = n == 0 && fds_.empty();
    out_ = Outcome::Ok();
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err != 0) {
      deferred_.Reject(SysError(env, out_.err, out_.syscall, out_.path).Value());
      return;
    }
    if (eof_) {
      deferred_.Resolve(env.Null());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", Napi::Buffer<char>::Copy(env, data_.data(), data_.size()));
    Napi::Array fds = Napi::Array::New(env, fds_.size());
    for (size_t i = 0; i < fds_.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds_[i]));
    o.Set("fds", fds);
    deferred_.Resolve(o);
  }

 private:
  int sock_;
  int timeout_ms_;
  Napi::Promise::Deferred deferred_;
  Outcome out_;
  std::vector<char> data_;
  std::vector<int> fds_;
  bool eof_ = false;
};

// recvFds(sock, timeoutMs): resolves to { data, fds } for one message, or
// null at end of stream; -1 waits forever. Received fds are O_CLOEXEC.
Napi::Value JsRecv(const Napi::CallbackInfo& info) {
  auto* w = new RecvWorker(info.Env(), info[0].As<Napi::Number>().Int32Value(),
                           info[1].As<Napi::Number>().Int32Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// socketsHere(domain, type, protocol, count, addr?): COUNT sockets in the
// calling thread's own namespace, bound to ADDR when given, all or nothing:
// what the user namespace helper (userns-helper.cc) does inside its
// namespace, here for the tests and fixtures that stand in for it or need
// sockets of a known kind.
Napi::Value JsSocketsHere(const Napi::CallbackInfo& info) {
  int domain = info[0].As<Napi::Number>().Int32Value();
  int type = info[1].As<Napi::Number>().Int32Value();
  int protocol = info[2].As<Napi::Number>().Int32Value();
  uint32_t count = info[3].As<Napi::Number>().Uint32Value();
  std::string addr;
  if (info.Length() > 4 && info[4].IsBuffer()) {
    auto b = info[4].As<Napi::Buffer<char>>();
    addr.assign(b.Data(), b.Length());
  }
  if (count == 0 || count > kMaxFds) return OutcomeToValue(info.Env(), Outcome::Fail(EINVAL, "socket"));
  std::vector<int> fds;
  for (uint32_t i = 0; i < count; i++) {
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      int e = errno;
      CloseAll(fds);
      return OutcomeToValue(info.Env(), Outcome::Fail(e, "socket"));
    }
    fds.push_back(fd);
    if (!addr.empty()) {
      int one = 1;
      if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, reinterpret_cast<const sockaddr*>(addr.data()), addr.size()) != 0) {
        int e = errno;
        CloseAll(fds);
        return OutcomeToValue(info.Env(), Outcome::Fail(e, "bind"));
      }
    }
  }
  Napi::Array out = Napi::Array::New(info.Env(), fds.size());
  for (size_t i = 0; i < fds.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), fds[i]));
  return out;
}

// socketInfo(fd): [domain, type, protocol] of a socket (SO_DOMAIN, SO_TYPE,
// SO_PROTOCOL), so that fds another process sent are checked before use.
// Throws (ENOTSOCK) for an fd that is not a socket. Plain getsockopt calls:
// fine on the JS thread.
Napi::Value JsSocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Array out = Napi::Array::New(env, 3);
  const int opts[3] = {SO_DOMAIN, SO_TYPE, SO_PROTOCOL};
  for (uint32_t i = 0; i < 3; i++) {
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opts[i], &v, &len) != 0) {
      return OutcomeToValue(env, Outcome::Fail(errno, "getsockopt"));
    }
    out.Set(i, Napi::Number::New(env, v));
  }
  return out;
}

// Cross-process locks: an flock on a lock file. The kernel drops an flock
// when its holder dies, however it dies, which is what makes a lock on a
// container ID safe against SIGKILL (a pid in a file would need a liveness
// guess). Only the non-blocking form is offered: the JS side retries with a
// timer, so no thread ever sleeps in flock.
//
// Opens (creating) PATH without following a symlink and takes an exclusive
// flock without blocking. EWOULDBLOCK when another open file description
// holds it. A holder may unlink the file before releasing it (so lock files
// do not pile up); a waiter that then locks the unlinked inode sees it is no
// longer the one at PATH and starts again with the new file.
Outcome TryLockFile(const std::string& path) {
  for (;;) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Outcome::Fail(errno, "open", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      return Outcome::Fail(e, "flock", path);
    }
    struct stat held, now;
    if (fstat(fd, &held) != 0) {
      int e = errno;
      close(fd);
      return Outcome::Fail(e, "fstat", path);
    }
    if (lstat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev)
      return Outcome::Ok(fd);
    close(fd);
  }
}

Napi::Value JsTryLockFile(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return OutcomeToValue(info.Env(), TryLockFile(path));
}

// readDirFiles(dir, maxBytes): [name, content, name, content, ...] for the
// regular files directly in DIR of at most maxBytes, contents decoded as
// UTF-8. One call for what is an open, a read and a close per file from JS
// (IPAM reads every lease of a network on each reservation, and those three
// calls were most of its cost). The directory's files are untrusted: only
// regular files are read (d_type, or fstatat without following when the
// filesystem does not say), opened relative to the directory with
// O_NOFOLLOW (never through a symlink swapped in meanwhile) and O_NONBLOCK
// (a FIFO swapped in cannot hang the open); a file that cannot be opened or
// read, or is longer, is left out. Fails only when the directory cannot be
// opened or listed. Synchronous, on the JS thread, like the fs calls it
// replaces: a few syscalls per small file.
Napi::Value JsReadDirFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  size_t max = info[1].As<Napi::Number>().Uint32Value();
  int dfd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return OutcomeToValue(env, Outcome::Fail(errno, "open", path));
  DIR* dir = fdopendir(dfd);
  if (dir == nullptr) {
    int e = errno;
    close(dfd);
    return OutcomeToValue(env, Outcome::Fail(e, "fdopendir", path));
  }
  std::vector<char> buf(max + 1);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (;;) {
    errno = 0;
    dirent* entry = readdir(dir);
    if (entry == nullptr) {
      int e = errno;
      closedir(dir);
      if (e != 0) return OutcomeToValue(env, Outcome::Fail(e, "readdir", path));
      return out;
    }
    if (entry->d_type != DT_REG) {
      struct stat st;
      if (entry->d_type != DT_UNKNOWN) continue;
      if (fstatat(dfd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    }
    int fd = openat(dfd, entry->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t got;
    do got = read(fd, buf.data(), buf.size());
    while (got < 0 && errno == EINTR);
    close(fd);
    if (got < 0 || static_cast<size_t>(got) > max) continue;
    out.Set(n++, Napi::String::New(env, entry->d_name));
    out.Set(n++, Napi::String::New(env, buf.data(), static_cast<size_t>(got)));
  }
}

Napi::Value JsClose(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) != 0 && errno != EINTR) return OutcomeToValue(info.Env(), Outcome::Fail(errno, "close"));
  return info.Env().Undefined();
}

// dupFd(fd): a duplicate with O_CLOEXEC, so a socket libuv owns can be handed
// to the relay and libuv's own fd closed.
Napi::Value JsDup(const Napi::CallbackInfo& info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return OutcomeToValue(info.Env(), Outcome::Fail(errno, "fcntl"));
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, JsClose, "closeFd"));
  exports.Set("dupFd", Napi::Function::New(env, JsDup, "dupFd"));
  exports.Set("tryLockFile", Napi::Function::New(env, JsTryLockFile, "tryLockFile"));
  exports.Set("readDirFiles", Napi::Function::New(env, JsReadDirFiles, "readDirFiles"));
  exports.Set("seqpacketPair", Napi::Function::New(env, JsPair, "seqpacketPair"));
  exports.Set("sendFds", Napi::Function::New(env, JsSend, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, JsRecv, "recvFds"));
  exports.Set("socketsHere", Napi::Function::New(env, JsSocketsHere, "socketsHere"));
  exports.Set("socketInfo", Napi::Function::New(env, JsSocketInfo, "socketInfo"));
}

}  // namespace podnet
