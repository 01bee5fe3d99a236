// Shared helpers for the podnet addon. The addon is deliberately thin: it
// makes the namespace and netlink system calls and nothing else; every
// decision (names, defaults, validation, decoding) lives in TypeScript.
#pragma once

#include <napi.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace podnet {

// What a system call sequence produced: an fd (or other integer) on success,
// or errno plus the failing call and the path it concerned.
struct Outcome {
  int err = 0;
  const char* syscall = nullptr;
  std::string path;
  int64_t value = -1;
  // OkFds: several fds, resolved as an array (value unused). Owned by the
  // Outcome until it reaches JavaScript: closed if it never does.
  bool isList = false;
  std::vector<int> fds;

  static Outcome Fail(int e, const char* call, std::string p = std::string()) {
    Outcome o;
    o.err = e;
    o.syscall = call;
    o.path = std::move(p);
    return o;
  }
  static Outcome Ok(int64_t v = 0) {
    Outcome o;
    o.value = v;
    return o;
  }
  static Outcome OkFds(std::vector<int> fds) {
    Outcome o;
    o.isList = true;
    o.fds = std::move(fds);
    return o;
  }
};

// A JS Error carrying errno (positive), syscall and path; the TypeScript
// layer turns it into a PodnetSystemError with Node's field conventions.
Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& path);

// Resolves to Outcome.value, or rejects with SysError.
Napi::Value OutcomeToPromise(Napi::Env env, std::function<Outcome()> fn);

// Returns Outcome.value or throws SysError (undefined is returned after a throw).
Napi::Value OutcomeToValue(Napi::Env env, const Outcome& o);

// Runs fn on a brand-new detached native thread and resolves to its
// Outcome.value (an array for OkFds) on the JS thread (no libuv pool hop). fn may switch the
// thread's namespace: the thread ends with it. fn is destroyed on the thread once it has run,
// so an fd it owns (each thread's own dup of a namespace fd) is closed there.
Napi::Value OnFreshThread(Napi::Env env, std::function<Outcome()> fn);

// Runs fn on a brand-new native thread and waits for it. Used for every call
// that switches namespace (unshare, setns): the thread is discarded afterwards,
// so neither the JS thread nor a libuv pool thread ever changes namespace.
Outcome RunOnFreshThread(std::function<Outcome()> fn);

// A namespace fd of one native thread's own. The fd JavaScript passes may be
// closed by it while the thread is starting, and its number reused by
// another namespace (another container's): setns would then join that one.
// So it is dup'ed on the calling thread before the thread starts, and the
// dup is closed with the job (on the thread: OnFreshThread destroys the job
// there), or if the thread never starts. (native/netns.cc)
class ThreadNsFd {
 public:
  explicit ThreadNsFd(int fd) : fd_(fd) {}
  ~ThreadNsFd();
  ThreadNsFd(const ThreadNsFd&) = delete;
  ThreadNsFd& operator=(const ThreadNsFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Shared, because a job is a std::function and so must be copyable.
using NsFd = std::shared_ptr<const ThreadNsFd>;

// F_DUPFD_CLOEXEC of FD, taken on the calling (JS) thread.
Outcome DupNsFdOnCallingThread(int fd, NsFd* out);

void InitNetns(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);
void InitNfnetlink(Napi::Env env, Napi::Object exports);
void InitRelay(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitRtnlChannel(Napi::Env env, Napi::Object exports);
void InitDelayLine(Napi::Env env, Napi::Object exports);

}  // namespace podnet
