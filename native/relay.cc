// The port forwarder's byte relay. One native thread per process (started on
// first use) runs an epoll loop that moves bytes between pairs of connected
// stream sockets with splice() through one pipe per direction, so the data
// never enters JavaScript, nor even user space. The thread never changes
// namespace: a socket keeps the namespace it was opened in, so the relay can
// join a host socket with one opened inside a container.
//
// Every socket is registered edge-triggered for both directions. The rule
// that keeps that from stalling: on any event of a pair, each direction is
// pumped until it cannot move (see Pump), and it only stops when a call
// returned EAGAIN (the kernel will report the next edge) or the pipe is full
// (then the write side has just returned EAGAIN, whose edge will come).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace podnet {
namespace {

constexpr int kMaxEvents = 128;
// A pipe starts at the kernel's default (64 KiB) and grows to this once a
// direction carries a bulk stream (the pipe half full): fewer, larger
// splices for bulk data, while short connections keep the small pipe (an
// unprivileged user's pipes count against pipe-user-pages-soft).
constexpr int kBulkPipeSize = 256 * 1024;
constexpr uint32_t kForceCopy = 1;  // relayStart flag: read/write instead of splice (bench, tests)

// Counters of one group of pairs (one forwarder), readable from the JS thread.
struct GroupStats {
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> pairs{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> bytes{0};
};

struct Pair;

// One socket's epoll registration; epoll_event.data.ptr points here.
struct End {
  Pair* pair;
  int fd;
};

// Bytes flowing from src to dst: through a pipe (splice), or through a
// buffer once splice has said EINVAL for these fds.
struct Direction {
  int src = -1;
  int dst = -1;
  int pipe[2] = {-1, -1};
  std::unique_ptr<char[]> buf;  // copy mode only
  size_t cap = 0;               // pipe or buffer capacity
  size_t off = 0;               // copy mode: first unsent byte in buf
  size_t pending = 0;           // read from src, not yet written to dst
  bool eof = false;             // src has no more to send
  bool grown = false;           // tried kBulkPipeSize already
  bool done = false;            // eof, all written, dst shut down for writing
};

struct Pair {
  uint64_t id = 0;
  std::shared_ptr<GroupStats> group;
  End a{this, -1};
  End b{this, -1};
  Direction ab, ba;
  bool connecting = false;
  bool closed = false;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;  // 0: b is already connected
};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Switches a direction to read/write (splice said EINVAL). What is already in
// the pipe moves to the buffer first: it is in memory, so one read takes it.
int ToCopyMode(Direction& d) {
  size_t cap = d.cap < 64 * 1024 ? 64 * 1024 : d.cap;
  std::unique_ptr<char[]> buf(new char[cap]);
  size_t got = 0;
  while (got < d.pending) {
    ssize_t n = read(d.pipe[0], buf.get() + got, d.pending - got);
    if (n <= 0) return n == 0 ? EIO : errno;
    got += static_cast<size_t>(n);
  }
  CloseFd(d.pipe[0]);
  CloseFd(d.pipe[1]);
  d.buf = std::move(buf);
  d.cap = cap;
  d.off = 0;
  return 0;
}

bool Retry(int e) { return e == EAGAIN || e == EINTR; }

// Best effort: a pipe that cannot grow (EPERM over the user's limit) keeps
// working at its size.
void Grow(Direction& d) {
  d.grown = true;
  int size = fcntl(d.pipe[1], F_SETPIPE_SZ, kBulkPipeSize);
  if (size > 0) d.cap = static_cast<size_t>(size);
}

// Moves what can be moved now from d.src to d.dst, counting what was written
// in both counters (before any shutdown, so a peer that saw EOF sees the
// final count). Returns 0, or the errno
// that ends the pair. Loops while anything moved, so with edge triggering it
// only stops on EAGAIN (an edge will follow) or a full pipe or buffer (then
// the write just returned EAGAIN, an edge will follow).
int Pump(Direction& d, GroupStats& group, GroupStats& totals) {
  while (!d.done) {
    bool moved = false;
    if (d.pending > 0) {
      ssize_t n = d.buf ? send(d.dst, d.buf.get() + d.off, d.pending, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : splice(d.pipe[0], nullptr, d.dst, nullptr, d.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.pending -= static_cast<size_t>(n);
        d.off = d.pending == 0 ? 0 : d.off + static_cast<size_t>(n);
        group.bytes.fetch_add(n, std::memory_order_relaxed);
        totals.bytes.fetch_add(n, std::memory_order_relaxed);
        moved = true;
      } else if (n < 0 && errno == EINVAL && !d.buf) {
        if (int e = ToCopyMode(d)) return e;
        continue;
      } else if (n == 0 || !Retry(errno)) {
        return n == 0 ? EIO : errno;
      }
    }
    // Copy mode reads only into an empty buffer: simple, and only a fallback.
    if (!d.eof && (d.buf ? d.pending == 0 : d.pending < d.cap)) {
      ssize_t n = d.buf ? recv(d.src, d.buf.get(), d.cap, MSG_DONTWAIT)
                        : splice(d.src, nullptr, d.pipe[1], nullptr, d.cap - d.pending,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.pending += static_cast<size_t>(n);
        moved = true;
        if (!d.buf && !d.grown && d.pending * 2 >= d.cap) Grow(d);
      } else if (n == 0) {
        d.eof = true;
      } else if (errno == EINVAL && !d.buf) {
        if (int e = ToCopyMode(d)) return e;
        continue;
      } else if (!Retry(errno)) {
        return errno;
      }
    }
    if (d.eof && d.pending == 0) {
      // Half-close: the peer sees EOF and can still answer the other way.
      // ENOTCONN: the other side is gone already; the other direction tells.
      if (shutdown(d.dst, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      d.done = true;
    }
    if (!moved) break;
  }
  return 0;
}

// Makes a direction's pipe; or its buffer when splice is not to be used.
int InitDirection(Direction& d, int src, int dst, bool copy) {
  d.src = src;
  d.dst = dst;
  if (copy) {
    d.cap = 64 * 1024;
    d.buf.reset(new char[d.cap]);
    return 0;
  }
  if (pipe2(d.pipe, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
  int size = fcntl(d.pipe[0], F_GETPIPE_SZ);
  if (size <= 0) return errno;
  d.cap = static_cast<size_t>(size);
  return 0;
}

struct Command {
  enum Kind { kStart, kCloseGroup } kind;
  Pair* pair = nullptr;          // kStart
  GroupStats* group = nullptr;   // kCloseGroup
  bool* done = nullptr;          // kCloseGroup: set under the mutex when finished
};

class Relay {
 public:
  // Starts the thread on first use. Returns 0 or an errno (syscall set).
  int Ensure(const char** syscall) {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return 0;
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return Fail(syscall, "epoll_create1");
    wakefd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd_ < 0) return Fail(syscall, "eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake-up eventfd
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) != 0) return Fail(syscall, "epoll_ctl");
    // The thread blocks every signal: they belong to the JS thread (Node
    // ignores SIGPIPE, and splice to a closed socket could raise it here).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    int rc = pthread_create(&tid, nullptr, Main, this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) {
      errno = rc;
      return Fail(syscall, "pthread_create");
    }
    pthread_detach(tid);
    started_ = true;
    return 0;
  }

  std::shared_ptr<GroupStats> NewGroup(uint32_t* id) {
    std::lock_guard<std::mutex> lock(mu_);
    *id = ++lastGroup_;
    auto g = std::make_shared<GroupStats>();
    groups_[*id] = g;
    return g;
  }

  std::shared_ptr<GroupStats> FindGroup(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : it->second;
  }

  const GroupStats& Totals() const { return totals_; }

  uint64_t Submit(Pair* p) {
    std::lock_guard<std::mutex> lock(mu_);
    p->id = ++lastPair_;
    queue_.push_back(Command{Command::kStart, p, nullptr, nullptr});
    Wake();
    return p->id;
  }

  // Closes every pair of the group and forgets it; returns (its final
  // counters) once done, so the caller can count on the fds being closed.
  std::shared_ptr<GroupStats> CloseGroup(uint32_t id) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = groups_.find(id);
    if (it == groups_.end()) return nullptr;
    std::shared_ptr<GroupStats> g = it->second;
    groups_.erase(it);
    bool done = false;
    queue_.push_back(Command{Command::kCloseGroup, nullptr, g.get(), &done});
    Wake();
    cv_.wait(lock, [&] { return done; });
    return g;
  }

 private:
  int Fail(const char** syscall, const char* call) {
    int e = errno;
    *syscall = call;
    CloseFd(wakefd_);
    CloseFd(epfd_);
    return e;
  }

  void Wake() {
    uint64_t one = 1;
    // EAGAIN: the counter is saturated, so a wake-up is pending anyway.
    while (write(wakefd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  static void* Main(void* self) {
    static_cast<Relay*>(self)->Loop();
    return nullptr;
  }

  void Loop() {
    epoll_event events[kMaxEvents];
    for (;;) {
      int n = epoll_wait(epfd_, events, kMaxEvents, -1);
      if (n < 0) continue;  // EINTR; nothing else can happen to a valid epoll fd
      for (int i = 0; i < n; i++) {
        auto* end = static_cast<End*>(events[i].data.ptr);
        if (end == nullptr) {
          TakeCommands();
        } else if (!end->pair->closed) {
          Handle(*end->pair, end == &end->pair->b);
        }
      }
      // Freed only now: a later event in the same batch may name the pair.
      for (uint64_t id : dead_) pairs_.erase(id);
      dead_.clear();
    }
  }

  void TakeCommands() {
    uint64_t count;
    while (read(wakefd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    std::vector<Command> cmds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cmds.swap(queue_);
    }
    for (Command& c : cmds) {
      if (c.kind == Command::kStart) {
        Begin(c.pair);
        continue;
      }
      for (auto& [id, p] : pairs_) {
        if (p->group.get() == c.group && !p->closed) Finish(*p, ECONNABORTED);
      }
      std::lock_guard<std::mutex> lock(mu_);
      *c.done = true;
      cv_.notify_all();
    }
  }

  bool Register(End& end) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &end;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, end.fd, &ev) == 0;
  }

  void Begin(Pair* raw) {
    pairs_.emplace(raw->id, std::unique_ptr<Pair>(raw));
    Pair& p = *raw;
    totals_.active++;
    totals_.pairs++;
    p.group->active++;
    p.group->pairs++;
    if (p.addrlen > 0) {
      if (connect(p.b.fd, reinterpret_cast<sockaddr*>(&p.addr), p.addrlen) != 0) {
        if (errno != EINPROGRESS) return Finish(p, errno);
        p.connecting = true;
      }
    }
    if (!Register(p.a) || !Register(p.b)) return Finish(p, errno);
    // Registration reports a socket that is ready already, so the first
    // events come by themselves.
  }

  void Handle(Pair& p, bool onB) {
    if (p.connecting) {
      if (!onB) return;  // the client spoke first; its data waits in the socket
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(p.b.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return Finish(p, err);
      p.connecting = false;
    }
    int err = Pump(p.ab, *p.group, totals_);
    if (err == 0) err = Pump(p.ba, *p.group, totals_);
    if (err != 0 || (p.ab.done && p.ba.done)) Finish(p, err);
  }

  // Closes a pair. After an error, both sockets are reset (SO_LINGER 0) so
  // neither peer mistakes a failure (or a forwarder shutting down) for a
  // clean end of stream.
  void Finish(Pair& p, int err) {
    // Counted first: whoever sees the sockets close also sees the counters.
    p.closed = true;
    totals_.active--;
    p.group->active--;
    if (err != 0) {
      totals_.failed++;
      p.group->failed++;
    }
    for (End* e : {&p.a, &p.b}) {
      if (e->fd < 0) continue;
      epoll_ctl(epfd_, EPOLL_CTL_DEL, e->fd, nullptr);
      if (err != 0) {
        linger lg{1, 0};
        setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      CloseFd(e->fd);
    }
    for (Direction* d : {&p.ab, &p.ba}) {
      CloseFd(d->pipe[0]);
      CloseFd(d->pipe[1]);
    }
    dead_.push_back(p.id);
  }

  std::mutex mu_;  // guards queue_, groups_, lastGroup_, lastPair_, started_
  std::condition_variable cv_;
  std::vector<Command> queue_;
  std::unordered_map<uint32_t, std::shared_ptr<GroupStats>> groups_;
  uint32_t lastGroup_ = 0;
  uint64_t lastPair_ = 0;
  bool started_ = false;
  int epfd_ = -1;
  int wakefd_ = -1;
  GroupStats totals_;
  // Relay thread only:
  std::unordered_map<uint64_t, std::unique_ptr<Pair>> pairs_;
  std::vector<uint64_t> dead_;
};

// Process-wide and never destroyed: the detached thread uses it until exit.
Relay& TheRelay() {
  static Relay* relay = new Relay();
  return *relay;
}

Napi::Value Throw(Napi::Env env, int err, const char* syscall) {
  SysError(env, err, syscall, std::string()).ThrowAsJavaScriptException();
  return env.Undefined();
}

// relayGroup(): a new group id (one per forwarder), starting the relay thread.
Napi::Value JsGroup(const Napi::CallbackInfo& info) {
  const char* syscall = nullptr;
  if (int e = TheRelay().Ensure(&syscall)) return Throw(info.Env(), e, syscall);
  uint32_t id;
  TheRelay().NewGroup(&id);
  return Napi::Number::New(info.Env(), id);
}

// relayStart(group, fdA, fdB, addr?, flags?): hands two sockets to the relay,
// which owns them from here on (they are closed on error too). With addr (a
// raw sockaddr), fdB is connected to it first, without blocking. Returns the
// pair's id.
Napi::Value JsStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fdA = info[1].As<Napi::Number>().Int32Value();
  int fdB = info[2].As<Napi::Number>().Int32Value();
  auto p = std::make_unique<Pair>();
  p->a.fd = fdA;
  p->b.fd = fdB;
  auto fail = [&](int e, const char* call) {
    CloseFd(p->a.fd);
    CloseFd(p->b.fd);
    for (Direction* d : {&p->ab, &p->ba}) {
      CloseFd(d->pipe[0]);
      CloseFd(d->pipe[1]);
    }
    return Throw(env, e, call);
  };
  p->group = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  if (!p->group) return fail(ENOENT, "relayStart");
  if (info.Length() > 3 && info[3].IsBuffer()) {
    auto addr = info[3].As<Napi::Buffer<char>>();
    if (addr.Length() < sizeof(sa_family_t) || addr.Length() > sizeof p->addr) return fail(EINVAL, "connect");
    memcpy(&p->addr, addr.Data(), addr.Length());
    p->addrlen = static_cast<socklen_t>(addr.Length());
  }
  uint32_t flags = info.Length() > 4 ? info[4].As<Napi::Number>().Uint32Value() : 0;
  for (int fd : {fdA, fdB}) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return fail(errno, "fcntl");
  }
  bool copy = (flags & kForceCopy) != 0;
  if (int e = InitDirection(p->ab, fdA, fdB, copy)) return fail(e, "pipe2");
  if (int e = InitDirection(p->ba, fdB, fdA, copy)) return fail(e, "pipe2");
  uint64_t id = TheRelay().Submit(p.release());
  return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value StatsObject(Napi::Env env, const GroupStats* s) {
  if (s == nullptr) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("active", Napi::Number::New(env, static_cast<double>(s->active.load())));
  o.Set("pairs", Napi::Number::New(env, static_cast<double>(s->pairs.load())));
  o.Set("failed", Napi::Number::New(env, static_cast<double>(s->failed.load())));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(s->bytes.load())));
  return o;
}

// relayCloseGroup(group): resets and closes every pair of the group; returns
// its final counters once they are closed (undefined for an unknown group).
Napi::Value JsCloseGroup(const Napi::CallbackInfo& info) {
  auto g = TheRelay().CloseGroup(info[0].As<Napi::Number>().Uint32Value());
  return StatsObject(info.Env(), g.get());
}

// relayStats(group?): { active, pairs, failed, bytes } of a group, or of the
// whole process without one (undefined for an unknown group).
Napi::Value JsStats(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    auto g = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
    return StatsObject(info.Env(), g.get());
  }
  return StatsObject(info.Env(), &TheRelay().Totals());
}

// dupFd(fd): a duplicate with O_CLOEXEC, so a socket libuv owns can be handed
// to the relay and libuv's own fd closed.
Napi::Value JsDup(const Napi::CallbackInfo& info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Throw(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitRelay(Napi::Env env, Napi::Object exports) {
  exports.Set("relayGroup", Napi::Function::New(env, JsGroup, "relayGroup"));
  exports.Set("relayStart", Napi::Function::New(env, JsStart, "relayStart"));
  exports.Set("relayCloseGroup", Napi::Function::New(env, JsCloseGroup, "relayCloseGroup"));
  exports.Set("relayStats", Napi::Function::New(env, JsStats, "relayStats"));
  exports.Set("dupFd", Napi::Function::New(env, JsDup, "dupFd"));
  exports.Set("RELAY_FORCE_COPY", Napi::Number::New(env, kForceCopy));
}

}  // namespace podnet
