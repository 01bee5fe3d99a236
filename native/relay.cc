// The port forwarder's byte relay. Native threads (started on first use, one
// per available core up to kMaxThreads) each run an epoll loop that moves
// bytes between pairs of connected stream sockets with splice() through one
// pipe per direction, so the data never enters JavaScript, nor even user
// space. The threads never change namespace: a socket keeps the namespace it
// was opened in, so the relay can join a host socket with one opened inside
// a container.
//
// Threads: the first (the acceptor) owns every listener and UDP port, and
// starts every pair. A pair that turns out to be a bulk stream (its pipe
// grows) moves, once, to the thread relaying the fewest bulk streams if
// that has at least two fewer than the acceptor: short connections never
// pay for a hand-over, and long streams spread over the cores. A pair lives
// on one thread at a time: its epoll set, its pipes, its memory. Counters
// are shared atomics, so they add up over threads.
//
// UDP: for each client address seen on a host UDP port, a socket from the
// group's UDP pool is connected to the container's address (a flow), and
// datagrams are relayed both ways with recvmmsg/sendmmsg on the acceptor;
// replies go back to the client with its address. A flow idle for longer
// than its port's timeout is closed, as rootlesskit's UDP proxy does.
//
// The acceptor also accepts on the forwarder's listening sockets, so a
// connection involves no JavaScript at all: each accepted client is paired
// with a socket from its group's pool (sockets JavaScript opened inside the
// namespace in batches), which is then connected to the container's address.
// When a pool runs low the acceptor asks JavaScript, through a thread-safe
// function, for another batch; while it is empty, clients wait in the
// listening socket's backlog.
//
// Every socket of a pair is registered edge-triggered for both directions.
// The rule that keeps that from stalling: on any event of a pair, each
// direction is pumped until it cannot move (see Pump), and it only stops
// when a call returned EAGAIN (the kernel will report the next edge) or the
// pipe is full (then the write side has just returned EAGAIN, whose edge
// will come). UDP sockets are level-triggered instead (see AddUdpPort).
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace podnet {
namespace {

constexpr int kMaxEvents = 128;
// A pipe starts at the kernel's default (64 KiB) and grows to this once a
// direction carries a bulk stream (the pipe half full): fewer, larger
// splices for bulk data (1 MiB, pipe-max-size's default, as Go's splice
// path uses; less relay CPU per Gbit/s here than 256 KiB), while short
// connections keep the small pipe. An unprivileged user's pipes count
// against pipe-user-pages-soft; growing is best effort.
constexpr int kBulkPipeSize = 1024 * 1024;
constexpr uint32_t kForceCopy = 1;  // relayStart flag: read/write instead of splice (bench, tests)

// Counters of one group (one forwarder), or of the whole process; readable
// from the JS thread.
struct Counters {
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> pairs{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> dropped{0};  // accepted, but no pair could be made
  std::atomic<int64_t> flows{0};     // UDP flows ever made
  std::atomic<int64_t> activeFlows{0};
  std::atomic<int64_t> datagrams{0};         // relayed, both directions
  std::atomic<int64_t> datagramsDropped{0};  // no flow socket, or a send failed
};

// Counters of one published port (a listener or a UDP port), readable from
// the JS thread: a group serves several ports, and its Counters add them up.
// In the container's view: rx is what went to the container (client to
// container), tx what came back.
struct PortCounters {
  std::atomic<int64_t> connections{0};  // TCP pairs started from this listener
  std::atomic<int64_t> active{0};       // of which are being relayed now
  std::atomic<int64_t> rxBytes{0};      // written to the container's side (UDP: payloads)
  std::atomic<int64_t> txBytes{0};      // written back to the client
  std::atomic<int64_t> rxDatagrams{0};
  std::atomic<int64_t> txDatagrams{0};
};

enum PoolKind { kTcpPool = 0, kUdpPool = 1, kPoolKinds = 2 };

// A refill request on its way to the JS thread.
struct RefillRequest {
  int kind;
  int size;  // what was left in the pool
};

// One forwarder: its counters and its pools of sockets opened inside the
// namespace. The pools are filled from the JS thread and drained by the
// relay thread, hence the mutex.
struct Group {
  Counters stats;
  std::mutex mu;  // guards everything below
  std::vector<int> pool[kPoolKinds];
  size_t low[kPoolKinds] = {0, 0};       // ask for more at or below this
  bool requested[kPoolKinds] = {false, false};
  bool closed = false;
  bool canRefill = false;  // tsfn holds the JS callback and may be called
  Napi::ThreadSafeFunction tsfn;
  // Empty pipes of finished pairs, kept for new pairs so a short connection
  // costs no pipe2/fcntl/close: given back by the thread that relayed the
  // pair, taken by the acceptor. Per group, so closing a forwarder closes
  // them too.
  struct FreePipe {
    int fds[2];
    size_t cap;
  };
  std::vector<FreePipe> freePipes;
  // The counters of each port handed over (relayListen, relayUdp), in that
  // order: appended on the JS thread, kept after the port closes so the
  // final counters can be read.
  std::vector<std::shared_ptr<PortCounters>> ports;

  // A socket of the pool, or -1 when it is empty. Asks for a refill (once
  // until it comes) when the pool is at or below its low-water mark.
  int Take(int kind) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<int>& p = pool[kind];
    int fd = -1;
    if (!p.empty()) {
      fd = p.back();
      p.pop_back();
    }
    if (p.size() <= low[kind] && !requested[kind] && canRefill && !closed) {
      auto* req = new RefillRequest{kind, static_cast<int>(p.size())};
      if (tsfn.NonBlockingCall(req, CallRefill) == napi_ok) {
        requested[kind] = true;
      } else {
        delete req;
      }
    }
    return fd;
  }

  // Gives back a socket taken by Take but not used.
  void PutBack(int kind, int fd) {
    std::lock_guard<std::mutex> lock(mu);
    pool[kind].push_back(fd);
  }

  static void CallRefill(Napi::Env env, Napi::Function fn, RefillRequest* req) {
    if (env != nullptr) fn.Call({Napi::Number::New(env, req->kind), Napi::Number::New(env, req->size)});
    delete req;
  }
};

// What epoll_event.data.ptr points to; kind says which struct it is.
struct Watch {
  enum Kind { kEnd, kListener, kUdpPort, kFlow } kind;
  explicit Watch(Kind k) : kind(k) {}
};

struct UdpPort;

// One client of a UDP port: its address, and the socket opened inside the
// namespace and connected to the container that speaks for it there.
struct Flow : Watch {
  Flow() : Watch(kFlow) {}
  UdpPort* port = nullptr;
  int fd = -1;  // -1 once closed (the struct is freed after the epoll batch)
  std::string key;
  sockaddr_storage client{};
  socklen_t clientlen = 0;
  int64_t last = 0;  // monotonic ms of the last datagram either way
  std::list<Flow*>::iterator lru;
};

// A host UDP port and its flows.
struct UdpPort : Watch {
  UdpPort() : Watch(kUdpPort) {}
  int fd = -1;  // -1 once closed (the struct is freed after the epoll batch)
  std::shared_ptr<Group> group;
  std::shared_ptr<PortCounters> port;
  sockaddr_storage addr{};  // the container's address and port
  socklen_t addrlen = 0;
  int64_t idleMs = 0;  // set by relayUdp
  size_t maxFlows = 4096;
  std::unordered_map<std::string, std::unique_ptr<Flow>> flows;
  std::list<Flow*> lru;  // least recently used first
};

// A listening TCP socket whose clients go to its group's pool sockets.
struct Listener : Watch {
  Listener() : Watch(kListener) {}
  int fd = -1;  // -1 once closed (the struct is freed after the epoll batch)
  std::shared_ptr<Group> group;
  std::shared_ptr<PortCounters> port;
  sockaddr_storage addr{};  // the container's address and port
  socklen_t addrlen = 0;
  bool starved = false;  // stopped accepting for want of a socket (or of fds)
};

struct Pair;

// One socket's epoll registration.
struct End : Watch {
  End(Pair* p) : Watch(kEnd), pair(p) {}
  Pair* pair;
  int fd = -1;
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

class Worker;

struct Pair {
  uint64_t id = 0;
  std::shared_ptr<Group> group;
  // Its listener's counters; null for a pair from relayStart. Shared, so a
  // pair may outlive its listener's struct.
  std::shared_ptr<PortCounters> port;
  End a{this};
  End b{this};
  Direction ab, ba;
  bool connecting = false;
  bool closed = false;
  bool bulk = false;    // a pipe grew: counted in its thread's Worker::bulk
  bool moving = false;  // off this thread's epoll set, handed over after the batch
  Worker* moveTo = nullptr;  // while moving
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
// in both counters and, when given, in its port's counter of that direction
// (before any shutdown, so a peer that saw EOF sees the
// final count). Returns 0, or the errno
// that ends the pair. Loops while anything moved, so with edge triggering it
// only stops on EAGAIN (an edge will follow) or a full pipe or buffer (then
// the write just returned EAGAIN, an edge will follow).
int Pump(Direction& d, const Direction& other, Counters& group, Counters& totals,
         std::atomic<int64_t>* port) {
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
        if (port != nullptr) port->fetch_add(n, std::memory_order_relaxed);
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
      // Not needed when the other way is done too: closing the pair sends
      // the FIN (both sides read to EOF, so close() does not reset).
      if (!other.done && shutdown(d.dst, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
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

// Closes the sockets and pipes of a pair that never reached the relay loop.
void Discard(Pair& p) {
  CloseFd(p.a.fd);
  CloseFd(p.b.fd);
  for (Direction* d : {&p.ab, &p.ba}) {
    CloseFd(d->pipe[0]);
    CloseFd(d->pipe[1]);
  }
}

int SetNonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return errno;
  return 0;
}

// Work for a relay thread from another thread. kStart: a pair from
// relayStart, its pipes made and counted, to be connected and relayed;
// kAdopt: a bulk pair another thread relayed until now, to be registered
// here.
struct Command {
  enum Kind { kStart, kAdopt, kListen, kUdp, kRetry, kCloseGroup } kind;
  Pair* pair = nullptr;          // kStart, kAdopt
  Listener* listener = nullptr;  // kListen
  UdpPort* udp = nullptr;        // kUdp
  Group* group = nullptr;        // kCloseGroup
  bool* done = nullptr;          // kCloseGroup: set under the thread's mutex when finished
};

// How long a listener that ran out of fds (EMFILE and the like) waits
// before accepting again: the backlog keeps the clients meanwhile.
constexpr int kRetryMs = 100;
// recvmmsg/sendmmsg batch, and the largest datagram relayed (IPv4's limit;
// anything larger is dropped).
constexpr int kBatch = 32;
constexpr size_t kMaxDatagram = 65536;
// recvmmsg batches per wake-up of one UDP socket (level-triggered: the rest
// waits for the next round of the loop, after the other sockets).
constexpr int kUdpRounds = 4;
// Bound on a group's kept pipes (Group::freePipes): each holds a little
// kernel memory.
constexpr size_t kMaxFreePipes = 128;
// Relay threads at most, whatever the core count (PODNET_RELAY_THREADS may
// ask for up to kMaxThreadsAsked): every forwarder process starts them, and
// each holds an epoll fd, an eventfd and a stack.
constexpr int kMaxThreads = 8;
constexpr int kMaxThreadsAsked = 64;

// Counts a new pair, before it reaches its thread: whoever sees its
// sockets work sees it counted.
void CountPair(Group& g, Counters& totals) {
  totals.active++;
  totals.pairs++;
  g.stats.active++;
  g.stats.pairs++;
}

// The relay of the process: its groups, its counters and its threads.
class Relay {
 public:
  // Starts the threads on first use. Returns 0 or an errno (syscall set).
  int Ensure(const char** syscall);

  std::shared_ptr<Group> NewGroup(uint32_t* id) {
    std::lock_guard<std::mutex> lock(mu_);
    *id = ++lastGroup_;
    auto g = std::make_shared<Group>();
    groups_[*id] = g;
    return g;
  }

  std::shared_ptr<Group> FindGroup(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : it->second;
  }

  Counters& Totals() { return totals_; }

  uint64_t NextPairId() { return ++lastPair_; }

  // Where a pair of SELF that just became a bulk stream (counted in SELF
  // already) should go: the thread with the fewest bulk streams, if it has
  // at least two fewer than SELF; else nullptr (it stays). The move is
  // counted at once, so streams that turn bulk in a burst spread.
  Worker* Lighter(Worker& self);

  // The first thread: listeners, UDP ports and their retries.
  Worker& Acceptor() { return *workers_[0]; }

  // Closes every pair, listener and pooled socket of the group and forgets
  // it; returns (its final counters) once done, so the caller can count on
  // the fds being closed and on no more refill requests being made.
  std::shared_ptr<Group> CloseGroup(uint32_t id);

  // The bulk streams each thread relays now (none before the first group).
  std::vector<int64_t> Loads();

 private:
  std::mutex mu_;  // guards groups_, lastGroup_, started_ and workers_ until started
  std::unordered_map<uint32_t, std::shared_ptr<Group>> groups_;
  uint32_t lastGroup_ = 0;
  bool started_ = false;
  Counters totals_;
  std::atomic<uint64_t> lastPair_{0};
  // Fixed once started_: the threads read it without the mutex.
  std::vector<std::unique_ptr<Worker>> workers_;
};

// The relay threads wanted: PODNET_RELAY_THREADS if set (1 to
// kMaxThreadsAsked), else the cores this process may run on, at most
// kMaxThreads.
int ThreadsWanted() {
  if (const char* env = getenv("PODNET_RELAY_THREADS")) {
    char* end = nullptr;
    long n = strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= kMaxThreadsAsked) return static_cast<int>(n);
  }
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  if (cores < 1) cores = 1;
  return cores > kMaxThreads ? kMaxThreads : cores;
}

// One relay thread: its epoll set, its command queue, and the pairs (and,
// on the acceptor, the listeners and UDP ports) registered there.
class Worker {
 public:
  Worker(Relay& relay, size_t index) : relay_(relay), totals_(relay.Totals()), index_(index) {}

  ~Worker() {
    CloseFd(wakefd_);
    CloseFd(epfd_);
  }

  // Starts the thread. Returns 0 or an errno (syscall set).
  int Start(const char** syscall) {
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
    std::string name = "podnet-relay-" + std::to_string(index_);
    pthread_setname_np(tid, name.c_str());
    pthread_detach(tid);
    return 0;
  }

  // Bulk pairs on this thread (or on their way to it); read by
  // Relay::Lighter.
  std::atomic<int64_t> bulk{0};

  void Submit(Command c) {
    std::lock_guard<std::mutex> lock(mu_);
    // A wake-up is due only for the first command: the thread reads the
    // eventfd before it takes the queue, so later ones go with it.
    bool idle = queue_.empty();
    queue_.push_back(c);
    if (idle) Wake();
  }

  // Runs a kCloseGroup command and returns once the thread has.
  void CloseAndWait(Group* g) {
    std::unique_lock<std::mutex> lock(mu_);
    bool done = false;
    bool idle = queue_.empty();
    queue_.push_back(Command{Command::kCloseGroup, nullptr, nullptr, nullptr, g, &done});
    if (idle) Wake();
    cv_.wait(lock, [&] { return done; });
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
    static_cast<Worker*>(self)->Loop();
    return nullptr;
  }

  static int64_t NowMs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  }

  // epoll_wait's timeout: until the listeners' retry or the first flow to
  // expire (-1: nothing is due).
  int NextTimeout() {
    int64_t due = retryAt_;
    for (UdpPort* u : udpPorts_) {
      if (u->lru.empty()) continue;
      int64_t t = u->lru.front()->last + u->idleMs;
      if (due == 0 || t < due) due = t;
    }
    if (due == 0) return -1;
    int64_t wait = due - NowMs();
    if (wait < 0) return 0;
    // +1: epoll rounds down, and waking just before the deadline would spin.
    return wait > 3600000 ? 3600000 : static_cast<int>(wait) + 1;
  }

  void Loop() {
    epoll_event events[kMaxEvents];
    for (;;) {
      int n = epoll_wait(epfd_, events, kMaxEvents, NextTimeout());
      now_ = NowMs();
      for (int i = 0; i < n; i++) {
        auto* w = static_cast<Watch*>(events[i].data.ptr);
        if (w == nullptr) {
          TakeCommands();
        } else if (w->kind == Watch::kListener) {
          auto* l = static_cast<Listener*>(w);
          if (l->fd >= 0) AcceptOn(*l);
        } else if (w->kind == Watch::kUdpPort) {
          auto* u = static_cast<UdpPort*>(w);
          if (u->fd >= 0) FromClients(*u);
        } else if (w->kind == Watch::kFlow) {
          auto* f = static_cast<Flow*>(w);
          if (f->fd >= 0) FromContainer(*f);
        } else {
          // A moving pair is left alone: the thread it goes to registers
          // it anew, which reports whatever is ready by then.
          auto* end = static_cast<End*>(w);
          if (!end->pair->closed && !end->pair->moving) Handle(*end->pair, end == &end->pair->b);
        }
      }
      if (retryAt_ != 0 && now_ >= retryAt_) {
        retryAt_ = 0;
        RetryStarved();
      }
      for (UdpPort* u : udpPorts_) {
        while (!u->lru.empty() && u->lru.front()->last + u->idleMs <= now_) CloseFlow(*u->lru.front());
      }
      // Handed over only now: a later event in the same batch may name them.
      for (std::unique_ptr<Pair>& p : moving_) {
        Worker* to = p->moveTo;
        if (!p->closed) to->Submit(Command{Command::kAdopt, p.release(), nullptr, nullptr, nullptr, nullptr});
      }
      moving_.clear();
      // Freed only now: a later event in the same batch may name them.
      for (uint64_t id : dead_) pairs_.erase(id);
      dead_.clear();
      deadFlows_.clear();
      deadUdp_.clear();
      deadListeners_.clear();
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
      switch (c.kind) {
        case Command::kStart:
          Begin(c.pair);
          break;
        case Command::kAdopt:
          Adopt(c.pair);
          break;
        case Command::kListen:
          AddListener(c.listener);
          break;
        case Command::kUdp:
          AddUdpPort(c.udp);
          break;
        case Command::kRetry:
          RetryStarved();
          break;
        case Command::kCloseGroup:
          Close(c.group);
          std::lock_guard<std::mutex> lock(mu_);
          *c.done = true;
          cv_.notify_all();
          break;
      }
    }
  }

  // The acceptor closes a group first (Relay::CloseGroup): after it, no
  // thread is handed a pair of the group, and those handed over before are
  // ahead of the close in their thread's queue.
  void Close(Group* g) {
    for (auto& [id, p] : pairs_) {
      if (p->group.get() == g && !p->closed) Finish(*p, ECONNABORTED);
    }
    // Not handed over yet: the thread they were going to may have closed
    // the group already. Counted there, so uncounted there.
    for (std::unique_ptr<Pair>& p : moving_) {
      if (p->group.get() != g || p->closed) continue;
      p->moveTo->bulk--;
      p->bulk = false;
      Finish(*p, ECONNABORTED);
    }
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if ((*it)->group.get() != g) {
        ++it;
        continue;
      }
      Unwatch((*it)->fd);
      deadListeners_.push_back(std::move(*it));  // may still be named in this batch
      it = listeners_.erase(it);
    }
    for (auto it = udpPorts_.begin(); it != udpPorts_.end();) {
      UdpPort* u = *it;
      if (u->group.get() != g) {
        ++it;
        continue;
      }
      while (!u->lru.empty()) CloseFlow(*u->lru.front());
      Unwatch(u->fd);
      it = udpPorts_.erase(it);
      deadUdp_.emplace_back(u);  // its flows may still be named in this batch
    }
    std::lock_guard<std::mutex> lock(g->mu);
    // With the kept pipes, under the lock that ReleasePipes takes: a pair
    // ending on another thread meanwhile keeps its pipes before (closed
    // here) or sees the group closed (and closes them itself).
    for (const Group::FreePipe& f : g->freePipes) {
      close(f.fds[0]);
      close(f.fds[1]);
    }
    g->freePipes.clear();
    g->closed = true;
    for (std::vector<int>& pool : g->pool) {
      for (int fd : pool) close(fd);
      pool.clear();
    }
  }

  // Unregisters a watched fd, then closes it. Never close() alone: close
  // unregisters only when the last fd of the open file goes, and a child
  // forked at that moment (child_process.spawn) holds them all until its
  // exec, so the registration, naming freed memory, would stay.
  void Unwatch(int& fd) {
    if (fd < 0) return;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    CloseFd(fd);
  }

  bool Register(End& end) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &end;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, end.fd, &ev) == 0;
  }

  void AddListener(Listener* raw) {
    std::unique_ptr<Listener> l(raw);
    {
      std::lock_guard<std::mutex> lock(l->group->mu);
      if (l->group->closed) return CloseFd(l->fd);
    }
    epoll_event ev{};
    // Edge-triggered: AcceptOn accepts until EAGAIN, or marks the listener
    // starved and RetryStarved picks it up again.
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = l.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, l->fd, &ev) != 0) return CloseFd(l->fd);
    listeners_.push_back(std::move(l));
  }

  void AddUdpPort(UdpPort* raw) {
    std::unique_ptr<UdpPort> u(raw);
    {
      std::lock_guard<std::mutex> lock(u->group->mu);
      if (u->group->closed) return CloseFd(u->fd);
    }
    if (!dgram_) dgram_.reset(new char[kBatch * kMaxDatagram]);
    epoll_event ev{};
    // Level-triggered: each wake-up takes a few batches at most, so a flood
    // on one port cannot hold the thread; what is left wakes it again.
    ev.events = EPOLLIN;
    ev.data.ptr = u.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, u->fd, &ev) != 0) return CloseFd(u->fd);
    udpPorts_.push_back(u.release());
  }

  // Prepares msgs_ for a recvmmsg of up to kBatch datagrams.
  void ArmReceive() {
    for (int i = 0; i < kBatch; i++) {
      iovs_[i] = iovec{dgram_.get() + static_cast<size_t>(i) * kMaxDatagram, kMaxDatagram};
      msgs_[i].msg_hdr = msghdr{};
      msgs_[i].msg_hdr.msg_name = &names_[i];
      msgs_[i].msg_hdr.msg_namelen = sizeof names_[i];
      msgs_[i].msg_hdr.msg_iov = &iovs_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_len = 0;
    }
  }

  void Count(Group& g, int64_t datagrams, int64_t bytes, int64_t dropped) {
    g.stats.datagrams += datagrams;
    totals_.datagrams += datagrams;
    g.stats.bytes += bytes;
    totals_.bytes += bytes;
    if (dropped > 0) {
      g.stats.datagramsDropped += dropped;
      totals_.datagramsDropped += dropped;
    }
  }

  // The flow key: family, port and address of the client, nothing else of
  // its sockaddr.
  static std::string FlowKey(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) {
      auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      std::string k(1, '4');
      k.append(reinterpret_cast<const char*>(&in->sin_port), sizeof in->sin_port);
      k.append(reinterpret_cast<const char*>(&in->sin_addr), sizeof in->sin_addr);
      return k;
    }
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    std::string k(1, '6');
    k.append(reinterpret_cast<const char*>(&in6->sin6_port), sizeof in6->sin6_port);
    k.append(reinterpret_cast<const char*>(&in6->sin6_addr), sizeof in6->sin6_addr);
    k.append(reinterpret_cast<const char*>(&in6->sin6_scope_id), sizeof in6->sin6_scope_id);
    return k;
  }

  // The flow of a client, made (from the UDP pool) if it has none; nullptr
  // when no socket is to be had.
  Flow* FlowFor(UdpPort& u, const sockaddr_storage& client, socklen_t len) {
    std::string key = FlowKey(client);
    auto it = u.flows.find(key);
    if (it != u.flows.end()) return it->second.get();
    if (u.flows.size() >= u.maxFlows) CloseFlow(*u.lru.front());
    int fd = u.group->Take(kUdpPool);
    if (fd < 0) return nullptr;
    // UDP connect only sets the peer: it does not block. Replies from any
    // other address are then filtered out by the kernel.
    if (connect(fd, reinterpret_cast<sockaddr*>(&u.addr), u.addrlen) != 0) {
      close(fd);
      return nullptr;
    }
    auto f = std::make_unique<Flow>();
    f->port = &u;
    f->fd = fd;
    f->key = key;
    f->client = client;
    f->clientlen = len;
    f->last = now_;
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered, as the host port
    ev.data.ptr = f.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      return nullptr;
    }
    f->lru = u.lru.insert(u.lru.end(), f.get());
    Flow* raw = f.get();
    u.flows.emplace(std::move(key), std::move(f));
    u.group->stats.flows++;
    u.group->stats.activeFlows++;
    totals_.flows++;
    totals_.activeFlows++;
    return raw;
  }

  void Touch(Flow& f) {
    f.last = now_;
    f.port->lru.splice(f.port->lru.end(), f.port->lru, f.lru);
  }

  void CloseFlow(Flow& f) {
    UdpPort& u = *f.port;
    Unwatch(f.fd);
    u.lru.erase(f.lru);
    u.group->stats.activeFlows--;
    totals_.activeFlows--;
    auto it = u.flows.find(f.key);
    deadFlows_.push_back(std::move(it->second));  // freed after the epoll batch
    u.flows.erase(it);
  }

  // Datagrams from clients on a host port, each to its flow's socket.
  void FromClients(UdpPort& u) {
    for (int round = 0; round < kUdpRounds; round++) {
      ArmReceive();
      int n = recvmmsg(u.fd, msgs_, kBatch, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // EAGAIN: nothing left
      }
      int64_t sent = 0, bytes = 0, dropped = 0;
      for (int i = 0; i < n; i++) {
        if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
          dropped++;
          continue;
        }
        Flow* f = FlowFor(u, names_[i], msgs_[i].msg_hdr.msg_namelen);
        if (f == nullptr || send(f->fd, iovs_[i].iov_base, msgs_[i].msg_len, MSG_DONTWAIT) < 0) {
          dropped++;  // no socket for a new client, or the send buffer is full
          continue;
        }
        Touch(*f);
        sent++;
        bytes += msgs_[i].msg_len;
      }
      Count(*u.group, sent, bytes, dropped);
      u.port->rxDatagrams += sent;
      u.port->rxBytes += bytes;
      if (n < kBatch) return;
    }
  }

  // Datagrams from the container on a flow, back to its client.
  void FromContainer(Flow& f) {
    UdpPort& u = *f.port;
    for (int round = 0; round < kUdpRounds; round++) {
      ArmReceive();
      int n = recvmmsg(f.fd, msgs_, kBatch, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        // ECONNREFUSED: an ICMP port unreachable from the container for an
        // earlier datagram; reading reported it, so read on.
        if (errno == ECONNREFUSED) continue;
        return;
      }
      int ok = 0;
      for (int i = 0; i < n; i++) {
        msgs_[i].msg_hdr.msg_name = &f.client;
        msgs_[i].msg_hdr.msg_namelen = f.clientlen;
        iovs_[i].iov_len = msgs_[i].msg_len;
      }
      int64_t bytes = 0;
      while (ok < n) {
        int m = sendmmsg(u.fd, msgs_ + ok, static_cast<unsigned>(n - ok), MSG_DONTWAIT);
        if (m <= 0) break;  // the host socket's buffer is full: the rest is dropped
        for (int i = ok; i < ok + m; i++) bytes += msgs_[i].msg_len;
        ok += m;
      }
      Count(*u.group, ok, bytes, n - ok);
      u.port->txDatagrams += ok;
      u.port->txBytes += bytes;
      Touch(f);
      if (n < kBatch) return;
    }
  }

  void RetryStarved() {
    for (auto& l : listeners_) {
      if (l->starved) AcceptOn(*l);
    }
  }

  // Accepts every waiting client that a pool socket is there for.
  void AcceptOn(Listener& l) {
    l.starved = false;
    for (;;) {
      int inner = l.group->Take(kTcpPool);
      if (inner < 0) {
        l.starved = true;  // a refill (kRetry) resumes it
        return;
      }
      int client = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) {
        int e = errno;
        l.group->PutBack(kTcpPool, inner);
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e != EAGAIN) {
          // Out of fds or memory: the clients wait in the backlog.
          l.starved = true;
          if (retryAt_ == 0) retryAt_ = NowMs() + kRetryMs;
        }
        return;
      }
      StartPair(l, client, inner);
    }
  }

  void StartPair(Listener& l, int client, int inner) {
    auto p = std::make_unique<Pair>();
    p->group = l.group;
    p->a.fd = client;
    p->b.fd = inner;
    p->addr = l.addr;
    p->addrlen = l.addrlen;
    if (!TakePipes(*l.group, *p)) {
      // No pipe (fds or memory): this client is refused.
      linger lg{1, 0};
      setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      Discard(*p);
      l.group->stats.dropped++;
      totals_.dropped++;
      return;
    }
    p->id = relay_.NextPairId();
    p->port = l.port;
    l.port->connections++;
    l.port->active++;
    CountPair(*p->group, totals_);
    Begin(p.release());
  }

  // The pipes of a new pair (a to b, b to a): kept ones, or new ones.
  static bool TakePipes(Group& g, Pair& p) {
    Direction* dirs[2] = {&p.ab, &p.ba};
    int ends[2][2] = {{p.a.fd, p.b.fd}, {p.b.fd, p.a.fd}};
    int kept = 0;
    {
      std::lock_guard<std::mutex> lock(g.mu);
      for (; kept < 2 && !g.freePipes.empty(); kept++) {
        const Group::FreePipe& f = g.freePipes.back();
        Direction& d = *dirs[kept];
        d.src = ends[kept][0];
        d.dst = ends[kept][1];
        d.pipe[0] = f.fds[0];
        d.pipe[1] = f.fds[1];
        d.cap = f.cap;
        g.freePipes.pop_back();
      }
    }
    for (int i = kept; i < 2; i++) {
      if (InitDirection(*dirs[i], ends[i][0], ends[i][1], false) != 0) return false;
    }
    return true;
  }

  // Keeps the empty pipes of the default size for a later pair, or closes
  // them.
  static void ReleasePipes(Group& g, Pair& p) {
    std::lock_guard<std::mutex> lock(g.mu);
    for (Direction* d : {&p.ab, &p.ba}) {
      if (d->pipe[0] >= 0 && d->pending == 0 && !d->grown && !g.closed && g.freePipes.size() < kMaxFreePipes) {
        g.freePipes.push_back(Group::FreePipe{{d->pipe[0], d->pipe[1]}, d->cap});
        d->pipe[0] = d->pipe[1] = -1;
        continue;
      }
      CloseFd(d->pipe[0]);
      CloseFd(d->pipe[1]);
    }
  }

  // Connects and registers a pair handed to this thread (already counted).
  void Begin(Pair* raw) {
    pairs_.emplace(raw->id, std::unique_ptr<Pair>(raw));
    Pair& p = *raw;
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
    // a is the client, b the socket in the namespace: ab is the container's rx.
    PortCounters* port = p.port.get();
    int err = Pump(p.ab, p.ba, p.group->stats, totals_, port ? &port->rxBytes : nullptr);
    if (err == 0) err = Pump(p.ba, p.ab, p.group->stats, totals_, port ? &port->txBytes : nullptr);
    if (err != 0 || (p.ab.done && p.ba.done)) return Finish(p, err);
    if (!p.bulk && (p.ab.grown || p.ba.grown)) BecameBulk(p);
  }

  // Counts a pair whose pipe just grew, and moves it to a thread with
  // fewer bulk streams if there is one: off this epoll set now, handed
  // over after the batch.
  void BecameBulk(Pair& p) {
    p.bulk = true;
    bulk++;
    Worker* to = relay_.Lighter(*this);
    if (to == nullptr) return;
    p.moving = true;
    p.moveTo = to;
    for (End* e : {&p.a, &p.b}) epoll_ctl(epfd_, EPOLL_CTL_DEL, e->fd, nullptr);
    auto it = pairs_.find(p.id);
    moving_.push_back(std::move(it->second));
    pairs_.erase(it);
  }

  // Takes over a bulk pair from another thread (counted here already).
  void Adopt(Pair* raw) {
    pairs_.emplace(raw->id, std::unique_ptr<Pair>(raw));
    Pair& p = *raw;
    p.moving = false;
    p.moveTo = nullptr;
    // Registration reports what is ready already: nothing that came while
    // the pair was on its way is missed.
    if (!Register(p.a) || !Register(p.b)) Finish(p, errno);
  }

  // Closes a pair. After an error, both sockets are reset (SO_LINGER 0) so
  // neither peer mistakes a failure (or a forwarder shutting down) for a
  // clean end of stream.
  void Finish(Pair& p, int err) {
    // Counted first: whoever sees the sockets close also sees the counters.
    p.closed = true;
    totals_.active--;
    p.group->stats.active--;
    if (p.port) p.port->active--;
    if (p.bulk) bulk--;
    if (err != 0) {
      totals_.failed++;
      p.group->stats.failed++;
    }
    for (End* e : {&p.a, &p.b}) {
      if (e->fd < 0) continue;
      if (err != 0) {
        linger lg{1, 0};
        setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      Unwatch(e->fd);
    }
    ReleasePipes(*p.group, p);
    dead_.push_back(p.id);
  }

  Relay& relay_;
  Counters& totals_;  // the process's, shared by every thread
  const size_t index_;
  std::mutex mu_;  // guards queue_
  std::condition_variable cv_;
  std::vector<Command> queue_;
  int epfd_ = -1;
  int wakefd_ = -1;
  // This thread only:
  std::unordered_map<uint64_t, std::unique_ptr<Pair>> pairs_;
  std::vector<uint64_t> dead_;
  std::vector<std::unique_ptr<Pair>> moving_;  // off the epoll set, handed over after the batch
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Closed with their group, freed after the epoll batch like pairs.
  std::vector<std::unique_ptr<Listener>> deadListeners_;
  int64_t retryAt_ = 0;  // when starved listeners try again after EMFILE (0: not due)
  int64_t now_ = 0;      // monotonic ms, read once per epoll batch
  std::vector<UdpPort*> udpPorts_;
  // Closed with their group, freed after the epoll batch like pairs.
  std::vector<std::unique_ptr<UdpPort>> deadUdp_;
  std::vector<std::unique_ptr<Flow>> deadFlows_;
  // Datagram buffers for recvmmsg/sendmmsg, made on first UDP use.
  std::unique_ptr<char[]> dgram_;
  mmsghdr msgs_[kBatch];
  iovec iovs_[kBatch];
  sockaddr_storage names_[kBatch];
};

int Relay::Ensure(const char** syscall) {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return 0;
  int wanted = ThreadsWanted();
  for (int i = 0; i < wanted; i++) {
    auto w = std::make_unique<Worker>(*this, workers_.size());
    if (int e = w->Start(syscall)) {
      // Fewer threads will do; none at all is an error. The ones started
      // are idle until handed work, which needs Ensure to have returned.
      if (workers_.empty()) return e;
      break;
    }
    workers_.push_back(std::move(w));
  }
  started_ = true;
  return 0;
}

Worker* Relay::Lighter(Worker& self) {
  Worker* best = nullptr;
  int64_t least = self.bulk.load(std::memory_order_relaxed) - 1;
  for (const std::unique_ptr<Worker>& w : workers_) {
    int64_t n = w->bulk.load(std::memory_order_relaxed);
    if (n < least) {
      best = w.get();
      least = n;
    }
  }
  if (best != nullptr) {
    self.bulk.fetch_sub(1, std::memory_order_relaxed);
    best->bulk.fetch_add(1, std::memory_order_relaxed);
  }
  return best;
}

std::vector<int64_t> Relay::Loads() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> out;
  for (const std::unique_ptr<Worker>& w : workers_) out.push_back(w->bulk.load(std::memory_order_relaxed));
  return out;
}

std::shared_ptr<Group> Relay::CloseGroup(uint32_t id) {
  std::shared_ptr<Group> g;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = groups_.find(id);
    if (it == groups_.end()) return nullptr;
    g = it->second;
    groups_.erase(it);
  }
  // In order, the acceptor first (see Worker::Close).
  for (const std::unique_ptr<Worker>& w : workers_) w->CloseAndWait(g.get());
  return g;
}

// Process-wide and never destroyed: the detached threads use it until exit.
Relay& TheRelay() {
  static Relay* relay = new Relay();
  return *relay;
}

Napi::Value Throw(Napi::Env env, int err, const char* syscall) {
  SysError(env, err, syscall, std::string()).ThrowAsJavaScriptException();
  return env.Undefined();
}

// relayGroup(onRefill?): a new group id (one per forwarder), starting the
// relay thread. onRefill(kind, left) is called when a pool runs low (once
// until relayPoolAdd answers); while the group is open it keeps the event
// loop alive, as a listening server would.
Napi::Value JsGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* syscall = nullptr;
  if (int e = TheRelay().Ensure(&syscall)) return Throw(env, e, syscall);
  uint32_t id;
  std::shared_ptr<Group> g = TheRelay().NewGroup(&id);
  if (info.Length() > 0 && info[0].IsFunction()) {
    // The finalizer runs after relayCloseGroup's release, or when the
    // environment ends without one (a worker thread exiting): from then on
    // the relay thread must not call the function.
    auto* keep = new std::shared_ptr<Group>(g);
    g->tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "podnet:relay", 0, 1, keep,
                                            [](Napi::Env, std::shared_ptr<Group>* gp) {
                                              {
                                                std::lock_guard<std::mutex> lock((*gp)->mu);
                                                (*gp)->canRefill = false;
                                              }
                                              delete gp;
                                            });
    g->canRefill = true;
  }
  return Napi::Number::New(env, id);
}

bool ReadAddr(const Napi::Value& v, sockaddr_storage* addr, socklen_t* len) {
  if (!v.IsBuffer()) return false;
  auto b = v.As<Napi::Buffer<char>>();
  if (b.Length() < sizeof(sa_family_t) || b.Length() > sizeof *addr) return false;
  memcpy(addr, b.Data(), b.Length());
  *len = static_cast<socklen_t>(b.Length());
  return true;
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
    Discard(*p);
    return Throw(env, e, call);
  };
  p->group = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  if (!p->group) return fail(ENOENT, "relayStart");
  if (info.Length() > 3 && !info[3].IsUndefined() && !ReadAddr(info[3], &p->addr, &p->addrlen))
    return fail(EINVAL, "connect");
  uint32_t flags = info.Length() > 4 ? info[4].As<Napi::Number>().Uint32Value() : 0;
  for (int fd : {fdA, fdB}) {
    if (int e = SetNonBlocking(fd)) return fail(e, "fcntl");
  }
  bool copy = (flags & kForceCopy) != 0;
  if (int e = InitDirection(p->ab, fdA, fdB, copy)) return fail(e, "pipe2");
  if (int e = InitDirection(p->ba, fdB, fdA, copy)) return fail(e, "pipe2");
  p->id = TheRelay().NextPairId();
  uint64_t id = p->id;
  CountPair(*p->group, TheRelay().Totals());
  TheRelay().Acceptor().Submit(Command{Command::kStart, p.release(), nullptr, nullptr, nullptr, nullptr});
  return Napi::Number::New(env, static_cast<double>(id));
}

// The counters of a port handed to a group, appended to the group's list;
// returns its index there (relayStats's `ports`).
uint32_t AddPortCounters(Group& g, std::shared_ptr<PortCounters>* out) {
  *out = std::make_shared<PortCounters>();
  std::lock_guard<std::mutex> lock(g.mu);
  g.ports.push_back(*out);
  return static_cast<uint32_t>(g.ports.size() - 1);
}

// relayListen(group, fd, addr): hands a listening TCP socket to the relay,
// which owns it from here on: each client it accepts is paired with a socket
// of the group's TCP pool, connected to addr (a raw sockaddr). Returns the
// index of its counters in relayStats's `ports`.
Napi::Value JsListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto l = std::make_unique<Listener>();
  l->fd = info[1].As<Napi::Number>().Int32Value();
  l->group = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  if (!l->group) {
    CloseFd(l->fd);
    return Throw(env, ENOENT, "relayListen");
  }
  if (!ReadAddr(info[2], &l->addr, &l->addrlen)) {
    CloseFd(l->fd);
    return Throw(env, EINVAL, "connect");
  }
  if (int e = SetNonBlocking(l->fd)) {
    CloseFd(l->fd);
    return Throw(env, e, "fcntl");
  }
  uint32_t index = AddPortCounters(*l->group, &l->port);
  TheRelay().Acceptor().Submit(Command{Command::kListen, nullptr, l.release(), nullptr, nullptr, nullptr});
  return Napi::Number::New(env, index);
}

// relayUdp(group, fd, addr, idleMs, maxFlows): hands a bound host UDP
// socket to the relay, which owns it from here on: each client address gets
// a socket of the group's UDP pool, connected to addr (a raw sockaddr),
// closed after idleMs without a datagram either way; at maxFlows the least
// recently used flow makes room. Returns the index of its counters in
// relayStats's `ports`.
Napi::Value JsUdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto u = std::make_unique<UdpPort>();
  u->fd = info[1].As<Napi::Number>().Int32Value();
  u->group = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  if (!u->group) {
    CloseFd(u->fd);
    return Throw(env, ENOENT, "relayUdp");
  }
  if (!ReadAddr(info[2], &u->addr, &u->addrlen)) {
    CloseFd(u->fd);
    return Throw(env, EINVAL, "connect");
  }
  u->idleMs = info[3].As<Napi::Number>().Int64Value();
  u->maxFlows = info[4].As<Napi::Number>().Uint32Value();
  if (u->idleMs < 1 || u->maxFlows < 1) {
    CloseFd(u->fd);
    return Throw(env, EINVAL, "relayUdp");
  }
  if (int e = SetNonBlocking(u->fd)) {
    CloseFd(u->fd);
    return Throw(env, e, "fcntl");
  }
  uint32_t index = AddPortCounters(*u->group, &u->port);
  TheRelay().Acceptor().Submit(Command{Command::kUdp, nullptr, nullptr, u.release(), nullptr, nullptr});
  return Napi::Number::New(env, index);
}

// relayPoolAdd(group, kind, fds): adds sockets (opened inside the namespace)
// to a pool of the group, which owns them from here on, and answers the
// group's refill request. Returns false (the fds closed) for a closed group.
Napi::Value JsPoolAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Group> g = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  int kind = info[1].As<Napi::Number>().Int32Value();
  Napi::Array arr = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  bool added = false;
  if (g && kind >= 0 && kind < kPoolKinds) {
    // Non-blocking here, once, rather than on the relay thread per connection.
    for (int fd : fds) fcntl(fd, F_SETFL, O_NONBLOCK);
    std::lock_guard<std::mutex> lock(g->mu);
    if (!g->closed) {
      g->pool[kind].insert(g->pool[kind].end(), fds.begin(), fds.end());
      g->requested[kind] = false;
      added = true;
    }
  }
  if (!added) {
    for (int fd : fds) close(fd);
    return Napi::Boolean::New(env, false);
  }
  TheRelay().Acceptor().Submit(Command{Command::kRetry, nullptr, nullptr, nullptr, nullptr, nullptr});
  return Napi::Boolean::New(env, true);
}

// relayPoolLow(group, kind, low): the pool size at or below which the group
// asks for a refill.
Napi::Value JsPoolLow(const Napi::CallbackInfo& info) {
  std::shared_ptr<Group> g = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  int kind = info[1].As<Napi::Number>().Int32Value();
  if (g && kind >= 0 && kind < kPoolKinds) {
    std::lock_guard<std::mutex> lock(g->mu);
    g->low[kind] = info[2].As<Napi::Number>().Uint32Value();
  }
  return info.Env().Undefined();
}

// relayPoolFailed(group, kind): a refill could not be made. The request is
// cleared and starved listeners try again, which asks anew if the pool is
// still low; the clients waiting meanwhile stay in the backlog.
Napi::Value JsPoolFailed(const Napi::CallbackInfo& info) {
  std::shared_ptr<Group> g = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
  int kind = info[1].As<Napi::Number>().Int32Value();
  if (g && kind >= 0 && kind < kPoolKinds) {
    std::lock_guard<std::mutex> lock(g->mu);
    g->requested[kind] = false;
  }
  TheRelay().Acceptor().Submit(Command{Command::kRetry, nullptr, nullptr, nullptr, nullptr, nullptr});
  return info.Env().Undefined();
}

// The counters of a group's ports, in the order they were handed over.
Napi::Value PortsArray(Napi::Env env, Group& g) {
  std::vector<std::shared_ptr<PortCounters>> ports;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    ports = g.ports;
  }
  Napi::Array out = Napi::Array::New(env, ports.size());
  auto num = [&](const std::atomic<int64_t>& v) { return Napi::Number::New(env, static_cast<double>(v.load())); };
  for (size_t i = 0; i < ports.size(); i++) {
    const PortCounters& c = *ports[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("connections", num(c.connections));
    o.Set("active", num(c.active));
    o.Set("rxBytes", num(c.rxBytes));
    o.Set("txBytes", num(c.txBytes));
    o.Set("rxDatagrams", num(c.rxDatagrams));
    o.Set("txDatagrams", num(c.txDatagrams));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// A group's counters (with its ports'), or the process's (group null).
Napi::Value StatsObject(Napi::Env env, const Counters* s, Group* group = nullptr) {
  if (s == nullptr) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  if (group != nullptr) o.Set("ports", PortsArray(env, *group));
  o.Set("active", Napi::Number::New(env, static_cast<double>(s->active.load())));
  o.Set("pairs", Napi::Number::New(env, static_cast<double>(s->pairs.load())));
  o.Set("failed", Napi::Number::New(env, static_cast<double>(s->failed.load())));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(s->bytes.load())));
  o.Set("dropped", Napi::Number::New(env, static_cast<double>(s->dropped.load())));
  o.Set("flows", Napi::Number::New(env, static_cast<double>(s->flows.load())));
  o.Set("activeFlows", Napi::Number::New(env, static_cast<double>(s->activeFlows.load())));
  o.Set("datagrams", Napi::Number::New(env, static_cast<double>(s->datagrams.load())));
  o.Set("datagramsDropped", Napi::Number::New(env, static_cast<double>(s->datagramsDropped.load())));
  return o;
}

// relayCloseGroup(group): resets and closes every pair of the group, its
// listeners and pooled sockets; returns its final counters once they are
// closed (undefined for an unknown group).
Napi::Value JsCloseGroup(const Napi::CallbackInfo& info) {
  auto g = TheRelay().CloseGroup(info[0].As<Napi::Number>().Uint32Value());
  if (g) {
    // The relay thread no longer calls it (the group is closed).
    std::lock_guard<std::mutex> lock(g->mu);
    if (g->canRefill) g->tsfn.Release();
  }
  return StatsObject(info.Env(), g ? &g->stats : nullptr, g.get());
}

// relayStats(group?): the counters of a group, with its ports' (`ports`),
// or of the whole process without one (undefined for an unknown group).
Napi::Value JsStats(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    auto g = TheRelay().FindGroup(info[0].As<Napi::Number>().Uint32Value());
    return StatsObject(info.Env(), g ? &g->stats : nullptr, g.get());
  }
  return StatsObject(info.Env(), &TheRelay().Totals());
}

// relayThreads(): the bulk streams (pairs whose pipe grew) each relay
// thread relays now, one entry per thread (empty before the first group).
Napi::Value JsThreads(const Napi::CallbackInfo& info) {
  std::vector<int64_t> loads = TheRelay().Loads();
  Napi::Array out = Napi::Array::New(info.Env(), loads.size());
  for (size_t i = 0; i < loads.size(); i++) out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(loads[i])));
  return out;
}

// hostSocket(addr, type): a socket bound to addr (a raw sockaddr) in this
// process's namespace, listening when type is SOCK_STREAM; returns [fd,
// port]. IPv6 sockets are IPv6 only, so a v4 and a v6 mapping of one port
// do not collide. Plain system calls: the main thread may make them.
Napi::Value JsHostSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!ReadAddr(info[0], &addr, &len)) return Throw(env, EINVAL, "bind");
  int type = info[1].As<Napi::Number>().Int32Value();
  int fd = socket(addr.ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Throw(env, errno, "socket");
  auto fail = [&](const char* call) {
    int e = errno;
    close(fd);
    return Throw(env, e, call);
  };
  int one = 1;
  // As Node's listen does: a port whose old connections linger in
  // TIME_WAIT can be listened on again at once.
  if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail("setsockopt");
  if (addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    return fail("setsockopt");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) return fail("bind");
  if (type == SOCK_STREAM && listen(fd, SOMAXCONN) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen) != 0) return fail("getsockname");
  // sin_port and sin6_port sit at the same offset.
  uint16_t port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fd));
  out.Set(1u, Napi::Number::New(env, port));
  return out;
}

}  // namespace

void InitRelay(Napi::Env env, Napi::Object exports) {
  exports.Set("relayGroup", Napi::Function::New(env, JsGroup, "relayGroup"));
  exports.Set("relayStart", Napi::Function::New(env, JsStart, "relayStart"));
  exports.Set("relayListen", Napi::Function::New(env, JsListen, "relayListen"));
  exports.Set("relayUdp", Napi::Function::New(env, JsUdp, "relayUdp"));
  exports.Set("relayPoolAdd", Napi::Function::New(env, JsPoolAdd, "relayPoolAdd"));
  exports.Set("relayPoolLow", Napi::Function::New(env, JsPoolLow, "relayPoolLow"));
  exports.Set("relayPoolFailed", Napi::Function::New(env, JsPoolFailed, "relayPoolFailed"));
  exports.Set("relayCloseGroup", Napi::Function::New(env, JsCloseGroup, "relayCloseGroup"));
  exports.Set("relayStats", Napi::Function::New(env, JsStats, "relayStats"));
  exports.Set("relayThreads", Napi::Function::New(env, JsThreads, "relayThreads"));
  exports.Set("hostSocket", Napi::Function::New(env, JsHostSocket, "hostSocket"));
  exports.Set("RELAY_FORCE_COPY", Napi::Number::New(env, kForceCopy));
  exports.Set("POOL_TCP", Napi::Number::New(env, kTcpPool));
  exports.Set("POOL_UDP", Napi::Number::New(env, kUdpPool));
}

}  // namespace podnet
