// Network namespace system calls: create (unshare on a throwaway thread),
// bind-mount an existing namespace, open and verify, unmount, and open a
// socket inside a namespace.
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "common.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace podnet {
namespace {

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::String>().Utf8Value();
}

// Makes DIR exist and be a shared mount point, so that namespace mounts made
// in it propagate to mount namespaces created later (podman and the CNI test
// utilities do the same). An flock on the directory serialises this across
// processes: two racing creators must not both bind-mount DIR onto itself.
Outcome PrepareDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0711) != 0 && errno != EEXIST) return Outcome::Fail(errno, "mkdir", dir);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Outcome::Fail(errno, "open", dir);
  if (flock(dfd, LOCK_EX) != 0) {
    int e = errno;
    close(dfd);
    return Outcome::Fail(e, "flock", dir);
  }
  Outcome out = Outcome::Ok();
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    if (errno != EINVAL) {
      out = Outcome::Fail(errno, "mount", dir);
    } else if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
      // EINVAL: DIR is not a mount point yet; make it one, then share it.
      out = Outcome::Fail(errno, "mount", dir);
    } else if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
      out = Outcome::Fail(errno, "mount", dir);
    }
  }
  close(dfd);  // releases the lock
  return out;
}

// Creates the empty file a namespace is mounted on. O_EXCL: an existing
// name is an error and the namespace already there stays untouched.
Outcome MakeMountPoint(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return Outcome::Fail(errno, "open", path);
  close(fd);
  return Outcome::Ok();
}

Outcome OpenMounted(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Outcome o = Outcome::Fail(errno, "open", path);
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
    return o;
  }
  return Outcome::Ok(fd);
}

// Must run on a thread made for this job alone (OnFreshThread): it leaves
// the thread in the new namespace, and the thread then ends.
Outcome CreateNetnsOnThisThread(const std::string& dir, const std::string& path) {
  Outcome o = PrepareDir(dir);
  if (o.err) return o;
  o = MakeMountPoint(path);
  if (o.err) return o;
  if (unshare(CLONE_NEWNET) != 0) {
    o = Outcome::Fail(errno, "unshare");
  } else {
    // /proc/self/ns/net is the main thread's namespace; this thread's own
    // is under its task directory.
    std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) o = Outcome::Fail(errno, "mount", path);
  }
  if (o.err) {
    unlink(path.c_str());
    return o;
  }
  return OpenMounted(path);
}

// Bind-mounts SRC (a /proc/PID/ns/net) at PATH. SRC is opened first and the
// mount is made from that fd, so a pid reused between the two steps cannot
// swap in another process's namespace.
Outcome BindNetns(const std::string& dir, const std::string& src, const std::string& path) {
  int sfd = open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (sfd < 0) return Outcome::Fail(errno, "open", src);
  Outcome o = PrepareDir(dir);
  if (!o.err) o = MakeMountPoint(path);
  if (!o.err) {
    std::string via = "/proc/self/fd/" + std::to_string(sfd);
    if (mount(via.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
      o = Outcome::Fail(errno, "mount", path);
      unlink(path.c_str());
    }
  }
  close(sfd);
  if (o.err) return o;
  return OpenMounted(path);
}

// Opens PATH and checks it is a network namespace. value: the fd, or -1 when
// PATH is not on nsfs, or -2 when it is another kind of namespace.
Outcome OpenNetns(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Outcome::Fail(errno, "open", path);
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) {
    int e = errno;
    close(fd);
    return Outcome::Fail(e, "fstatfs", path);
  }
  if (sfs.f_type != static_cast<decltype(sfs.f_type)>(NSFS_MAGIC)) {
    close(fd);
    return Outcome::Ok(-1);
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    close(fd);
    return Outcome::Ok(-2);
  }
  return Outcome::Ok(fd);
}

Outcome RemoveNetns(const std::string& path) {
  // MNT_DETACH: a namespace still in use elsewhere must not make removal
  // fail; EINVAL means it was not mounted (already unmounted or never was).
  // UMOUNT_NOFOLLOW: a symlink put in place of the mount point must not make
  // us unmount whatever it points at (unlink never follows one).
  if (umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
    return Outcome::Fail(errno, "umount2", path);
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Outcome::Fail(errno, "unlink", path);
  return Outcome::Ok();
}

struct SocketSpec {
  NsFd ns;
  int domain;
  int type;
  int protocol;
  std::string addr;  // raw sockaddr bytes to bind, empty for none
};

// Must run on a thread made for this job alone: joins the namespace, opens
// the socket (and binds it, when asked); the thread then ends. The socket
// keeps the namespace it was opened in.
Outcome OpenSocketOnThisThread(const SocketSpec& s) {
  if (setns(s.ns->get(), CLONE_NEWNET) != 0) return Outcome::Fail(errno, "setns");
  int fd = socket(s.domain, s.type | SOCK_CLOEXEC, s.protocol);
  if (fd < 0) return Outcome::Fail(errno, "socket");
  if (!s.addr.empty()) {
    int one = 1;
    if (s.type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<const sockaddr*>(s.addr.data()), s.addr.size()) != 0) {
      int e = errno;
      close(fd);
      return Outcome::Fail(e, "bind");
    }
  }
  return Outcome::Ok(fd);
}

// Must run on a thread made for this job alone, like OpenSocketOnThisThread:
// one setns for COUNT sockets, which is what makes a batch cheap. All or
// nothing: on a failure the sockets already opened are closed.
Outcome OpenSocketsOnThisThread(const NsFd& ns, int domain, int type, int protocol, int count) {
  if (setns(ns->get(), CLONE_NEWNET) != 0) return Outcome::Fail(errno, "setns");
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; i++) {
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      int e = errno;
      for (int f : fds) close(f);
      return Outcome::Fail(e, "socket");
    }
    fds.push_back(fd);
  }
  return Outcome::OkFds(std::move(fds));
}

// socketIn's arguments, with the thread's own dup of the namespace fd.
Outcome ReadSocketSpec(const Napi::CallbackInfo& info, SocketSpec* s) {
  s->domain = info[1].As<Napi::Number>().Int32Value();
  s->type = info[2].As<Napi::Number>().Int32Value();
  s->protocol = info[3].As<Napi::Number>().Int32Value();
  if (info.Length() > 4 && info[4].IsBuffer()) {
    auto b = info[4].As<Napi::Buffer<char>>();
    s->addr.assign(b.Data(), b.Length());
  }
  return DupNsFdOnCallingThread(info[0].As<Napi::Number>().Int32Value(), &s->ns);
}

Napi::Value Rejected(Napi::Env env, const Outcome& o) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(SysError(env, o.err, o.syscall, o.path).Value());
  return d.Promise();
}

Napi::Value JsCreate(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0), path = ArgString(info, 1);
  return OnFreshThread(info.Env(), [dir, path]() { return CreateNetnsOnThisThread(dir, path); });
}

Napi::Value JsBind(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0), src = ArgString(info, 1), path = ArgString(info, 2);
  return OutcomeToPromise(info.Env(), [dir, src, path]() { return BindNetns(dir, src, path); });
}

Napi::Value JsOpen(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  return OutcomeToPromise(info.Env(), [path]() { return OpenNetns(path); });
}

Napi::Value JsRemove(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  return OutcomeToPromise(info.Env(), [path]() { return RemoveNetns(path); });
}

Napi::Value JsSocket(const Napi::CallbackInfo& info) {
  SocketSpec s;
  Outcome o = ReadSocketSpec(info, &s);
  if (o.err) return Rejected(info.Env(), o);
  return OnFreshThread(info.Env(), [s]() { return OpenSocketOnThisThread(s); });
}

// socketsIn(nsfd, domain, type, protocol, count): COUNT sockets opened inside
// the namespace on one fresh thread; resolves to their fds.
Napi::Value JsSockets(const Napi::CallbackInfo& info) {
  NsFd ns;
  Outcome o = DupNsFdOnCallingThread(info[0].As<Napi::Number>().Int32Value(), &ns);
  if (o.err) return Rejected(info.Env(), o);
  int domain = info[1].As<Napi::Number>().Int32Value();
  int type = info[2].As<Napi::Number>().Int32Value();
  int protocol = info[3].As<Napi::Number>().Int32Value();
  int count = info[4].As<Napi::Number>().Int32Value();
  return OnFreshThread(info.Env(), [=]() { return OpenSocketsOnThisThread(ns, domain, type, protocol, count); });
}

// The JS thread waits for this thread, so it cannot close the fd meanwhile;
// the dup is taken all the same, so every namespace thread follows one rule.
Napi::Value JsSocketSync(const Napi::CallbackInfo& info) {
  SocketSpec s;
  Outcome o = ReadSocketSpec(info, &s);
  if (o.err) return OutcomeToValue(info.Env(), o);
  return OutcomeToValue(info.Env(), RunOnFreshThread([s]() { return OpenSocketOnThisThread(s); }));
}

}  // namespace

ThreadNsFd::~ThreadNsFd() { close(fd_); }

Outcome DupNsFdOnCallingThread(int fd, NsFd* out) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return Outcome::Fail(errno, "fcntl");
  *out = std::make_shared<const ThreadNsFd>(d);
  return Outcome::Ok();
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("createNetns", Napi::Function::New(env, JsCreate, "createNetns"));
  exports.Set("bindNetns", Napi::Function::New(env, JsBind, "bindNetns"));
  exports.Set("openNetns", Napi::Function::New(env, JsOpen, "openNetns"));
  exports.Set("removeNetns", Napi::Function::New(env, JsRemove, "removeNetns"));
  exports.Set("socketIn", Napi::Function::New(env, JsSocket, "socketIn"));
  exports.Set("socketsIn", Napi::Function::New(env, JsSockets, "socketsIn"));
  exports.Set("socketInSync", Napi::Function::New(env, JsSocketSync, "socketInSync"));
}

}  // namespace podnet
