// The delay line of podnet/testing's link impairment, for kernels without
// sch_netem. A cls_bpf filter on the egress of a link's end redirects every
// frame leaving it to a tap in the same namespace; this file reads them from
// the tap's fd, holds each until its release time and sends it out of the
// end through an AF_PACKET socket whose SO_MARK the filter lets pass. What
// netem would do in the kernel, done in userspace: delay, jitter (uniform,
// as netem's without a distribution table), loss, a rate, a queue limit.
//
// One thread serves every line of the process (an epoll set with each
// line's input fd and one timerfd, armed for the earliest release time of
// all lines). It never changes namespace: the tap and the packet socket are
// made inside the end's namespace by delayLineSockets, on a thread of their
// own that then ends, and keep that namespace. A line itself only reads
// datagrams from one fd and writes them to another, so the tests drive it
// with socketpairs, unprivileged.
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace podnet {
namespace {

// Frames read from one line before the thread looks at the others.
constexpr int kReadBudget = 64;
// A tap delivers one frame a read: the largest a veth sends (a GSO packet
// is segmented before it reaches the tap, which has no TSO), with room.
constexpr size_t kMaxFrame = 65536;
// The epoll data of the timerfd; lines are numbered from 1, their input is
// registered by id and their output (while it is full) by id | kOutputKey.
constexpr uint64_t kTimerKey = 0;
constexpr uint64_t kOutputKey = 1ULL << 32;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What a line does to each frame; swapped whole, under the lock.
struct Params {
  int64_t delayNs = 0;
  int64_t jitterNs = 0;
  double loss = 0;       // probability, 0 to 1
  double rateBytes = 0;  // bytes a second, 0: unlimited
  size_t limit = 1000;   // frames queued at most (netem's default limit)
};

struct Frame {
  int64_t release;
  std::vector<char> data;
};

// The counters of a line, in the order stats() returns them.
struct Counters {
  double frames = 0;      // read from the input
  double delivered = 0;   // sent on
  double lost = 0;        // dropped by the loss probability
  double overflowed = 0;  // dropped because `limit` frames were queued
  double failed = 0;      // refused by the output socket (ENOBUFS, ...)
};

struct Line {
  int in = -1;
  int out = -1;
  Params params;
  std::deque<Frame> queue;
  // When the last frame queued leaves: frames leave in the order they
  // came (FIFO, no reordering under jitter), and a rate spaces them.
  int64_t lastRelease = 0;
  uint64_t rng = 0;
  Counters counters;
  int err = 0;  // a read error that stopped the line (the tap went away)
  bool blocked = false;  // waiting for the output to be writable (EPOLLOUT)

  ~Line() {
    if (in >= 0) close(in);
    if (out >= 0) close(out);
  }

  // splitmix64: a line's own generator, seeded from getrandom.
  uint64_t Next() {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  void Admit(const char* data, size_t len, int64_t now) {
    counters.frames++;
    if (params.loss > 0 && Uniform() < params.loss) {
      counters.lost++;
      return;
    }
    if (queue.size() >= params.limit) {
      counters.overflowed++;
      return;
    }
    int64_t delay = params.delayNs;
    if (params.jitterNs > 0) {
      delay += static_cast<int64_t>((Uniform() * 2 - 1) * static_cast<double>(params.jitterNs));
      if (delay < 0) delay = 0;
    }
    int64_t release = now + delay;
    if (!queue.empty() && release < lastRelease) release = lastRelease;
    // netem's rate: the frame's serialization time follows the previous
    // frame's departure (or its own delay, whichever is later).
    if (params.rateBytes > 0)
      release += static_cast<int64_t>(std::ceil(static_cast<double>(len) * 1e9 / params.rateBytes));
    lastRelease = release;
    queue.push_back(Frame{release, std::vector<char>(data, data + len)});
  }

  // Sends what is due. False when the output's buffer is full (EAGAIN):
  // the frame stays at the head until the output is writable again. Any
  // other refusal (ENOBUFS: the device dropped it) is a failed frame.
  bool Release(int64_t now) {
    while (!queue.empty() && queue.front().release <= now) {
      const Frame& f = queue.front();
      ssize_t n;
      do {
        n = send(out, f.data.data(), f.data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      if (n == static_cast<ssize_t>(f.data.size())) {
        counters.delivered++;
      } else {
        counters.failed++;
      }
      queue.pop_front();
    }
    return true;
  }
};

// The lines of the process and their thread. Process-wide and never
// destroyed: the detached thread uses it until exit.
class DelayLines {
 public:
  // Starts the thread on first use: 0, or an errno with *syscall set.
  int Ensure(const char** syscall) {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return 0;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return Failed(syscall, "epoll_create1");
    timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_ < 0) return Failed(syscall, "timerfd_create");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimerKey;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, timer_, &ev) != 0) return Failed(syscall, "epoll_ctl");
    pthread_t tid;
    int rc = pthread_create(&tid, nullptr, Main, this);
    if (rc != 0) {
      errno = rc;
      return Failed(syscall, "pthread_create");
    }
    pthread_detach(tid);
    started_ = true;
    return 0;
  }

  // Takes IN and OUT (closed with the line, or here on failure).
  Outcome Add(int in, int out, const Params& p) {
    auto line = std::make_unique<Line>();
    line->in = in;
    line->out = out;
    line->params = p;
    if (getrandom(&line->rng, sizeof line->rng, GRND_NONBLOCK) != sizeof line->rng)
      line->rng = static_cast<uint64_t>(NowNs()) ^ reinterpret_cast<uintptr_t>(line.get());
    int fl = fcntl(in, F_GETFL);
    if (fl < 0 || fcntl(in, F_SETFL, fl | O_NONBLOCK) != 0) return Outcome::Fail(errno, "fcntl");
    std::lock_guard<std::mutex> lock(mu_);
    uint32_t id = ++last_;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, in, &ev) != 0) return Outcome::Fail(errno, "epoll_ctl");
    lines_[id] = std::move(line);
    return Outcome::Ok(id);
  }

  bool Set(uint32_t id, const Params& p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lines_.find(id);
    if (it == lines_.end()) return false;
    it->second->params = p;
    return true;
  }

  // Counters, queue length and error of a line; false for an unknown one.
  bool Stats(uint32_t id, Counters* c, size_t* queued, int* err) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lines_.find(id);
    if (it == lines_.end()) return false;
    *c = it->second->counters;
    *queued = it->second->queue.size();
    *err = it->second->err;
    return true;
  }

  // Unregisters the line's input before it is closed (a fork keeps the open
  // file, and so the registration, alive), then frees it: the thread finds
  // lines by id under the lock, so an event still in its batch names none.
  bool Close(uint32_t id, Counters* c, size_t* queued, int* err) {
    std::unique_ptr<Line> line;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = lines_.find(id);
      if (it == lines_.end()) return false;
      line = std::move(it->second);
      lines_.erase(it);
      if (line->err == 0) epoll_ctl(ep_, EPOLL_CTL_DEL, line->in, nullptr);
      if (line->blocked) epoll_ctl(ep_, EPOLL_CTL_DEL, line->out, nullptr);
    }
    *c = line->counters;
    *queued = line->queue.size();
    *err = line->err;
    return true;
  }

 private:
  static int Failed(const char** syscall, const char* call) {
    *syscall = call;
    return errno;
  }

  static void* Main(void* self) {
    static_cast<DelayLines*>(self)->Run();
    return nullptr;
  }

  void Run() {
    std::vector<char> buf(kMaxFrame);
    epoll_event events[64];
    for (;;) {
      int n = epoll_wait(ep_, events, 64, -1);
      if (n < 0) continue;  // EINTR
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == kTimerKey) {
          uint64_t expirations;
          while (read(timer_, &expirations, sizeof expirations) > 0) {
          }
          continue;
        }
        uint64_t key = events[i].data.u64;
        auto it = lines_.find(static_cast<uint32_t>(key));
        if (it == lines_.end()) continue;
        Line& line = *it->second;
        if (key & kOutputKey) {
          line.blocked = false;
          epoll_ctl(ep_, EPOLL_CTL_DEL, line.out, nullptr);
        } else {
          Drain(line, buf);
        }
      }
      int64_t now = NowNs();
      int64_t next = INT64_MAX;
      for (auto& [id, line] : lines_) {
        if (line->blocked) continue;
        if (!line->Release(now)) {
          epoll_event ev{};
          ev.events = EPOLLOUT;
          ev.data.u64 = id | kOutputKey;
          line->blocked = epoll_ctl(ep_, EPOLL_CTL_ADD, line->out, &ev) == 0;
          if (line->blocked) continue;
        }
        if (!line->queue.empty() && line->queue.front().release < next) next = line->queue.front().release;
      }
      Arm(next);
    }
  }

  // Reads what the line's input has (up to the budget; the epoll set is
  // level-triggered, so what is left brings the thread back).
  void Drain(Line& line, std::vector<char>& buf) {
    for (int i = 0; i < kReadBudget; i++) {
      ssize_t n = read(line.in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        // The tap is gone (deleted under us): stop watching it, say so in
        // the line's counters, keep what is queued going out.
        line.err = errno;
        epoll_ctl(ep_, EPOLL_CTL_DEL, line.in, nullptr);
        return;
      }
      if (n == 0) {
        // A socketpair's peer closed (the tests' input): nothing more comes.
        line.err = EPIPE;
        epoll_ctl(ep_, EPOLL_CTL_DEL, line.in, nullptr);
        return;
      }
      line.Admit(buf.data(), static_cast<size_t>(n), NowNs());
    }
  }

  void Arm(int64_t at) {
    if (at == armed_) return;
    itimerspec its{};
    if (at != INT64_MAX) {
      its.it_value.tv_sec = at / 1000000000;
      its.it_value.tv_nsec = at % 1000000000;
    }
    // Zero disarms; a time already past fires at once.
    timerfd_settime(timer_, TFD_TIMER_ABSTIME, &its, nullptr);
    armed_ = at;
  }

  std::mutex mu_;  // guards everything below (the thread holds it while it works)
  std::unordered_map<uint32_t, std::unique_ptr<Line>> lines_;
  uint32_t last_ = 0;
  bool started_ = false;
  int ep_ = -1;
  int timer_ = -1;
  int64_t armed_ = INT64_MAX;
};

DelayLines& Lines() {
  static DelayLines* lines = new DelayLines();
  return *lines;
}

// Must run on a thread made for this job alone (it joins the namespace and
// then ends). The tap: non-persistent, so it goes when its fd closes
// (with this process, at the latest); no IPv6 and no ARP, so the kernel
// never sends a frame of its own through it, which the line would take
// for one of the link's; up, since a down device's qdisc drops what the
// filter redirects. The packet socket: bound to the link's end with
// protocol 0 (it receives nothing), marked so the filter lets what it
// sends pass.
Outcome LineSocketsOnThisThread(const NsFd& ns, const std::string& tap, int ifindex, uint32_t mark) {
  if (setns(ns->get(), CLONE_NEWNET) != 0) return Outcome::Fail(errno, "setns");
  int t = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (t < 0) return Outcome::Fail(errno, "open", "/dev/net/tun");
  std::vector<int> fds{t};
  auto fail = [&fds](int e, const char* call, std::string path = std::string()) {
    for (int fd : fds) close(fd);
    return Outcome::Fail(e, call, std::move(path));
  };
  ifreq ifr{};
  if (tap.size() >= IFNAMSIZ) return fail(EINVAL, "TUNSETIFF", tap);
  memcpy(ifr.ifr_name, tap.data(), tap.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(t, TUNSETIFF, &ifr) != 0) return fail(errno, "TUNSETIFF", tap);
  // /proc/sys/net is the namespace of the thread that opens it: this one's.
  std::string v6 = "/proc/sys/net/ipv6/conf/" + tap + "/disable_ipv6";
  int s6 = open(v6.c_str(), O_WRONLY | O_CLOEXEC);
  if (s6 >= 0) {
    ssize_t w = write(s6, "1", 1);
    int e = errno;
    close(s6);
    if (w != 1) return fail(e, "write", v6);
  } else if (errno != ENOENT) {  // ENOENT: no IPv6 in this kernel
    return fail(errno, "open", v6);
  }
  int p = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (p < 0) return fail(errno, "socket");
  fds.push_back(p);
  // ioctl(SIOCSIFFLAGS) on any socket of the namespace sets the tap up.
  if (ioctl(p, SIOCGIFFLAGS, &ifr) != 0) return fail(errno, "SIOCGIFFLAGS", tap);
  ifr.ifr_flags |= IFF_UP | IFF_NOARP;
  if (ioctl(p, SIOCSIFFLAGS, &ifr) != 0) return fail(errno, "SIOCSIFFLAGS", tap);
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_ifindex = ifindex;
  if (bind(p, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) return fail(errno, "bind");
  if (setsockopt(p, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) return fail(errno, "setsockopt");
  // Room for a burst of releases while the veth's peer drains them.
  int sndbuf = 4 << 20;
  if (setsockopt(p, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
    setsockopt(p, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  return Outcome::OkFds(std::move(fds));
}

// [delayNs, jitterNs, loss (0 to 1), rate (bytes/s, 0: none), limit].
bool ReadParams(const Napi::Value& v, Params* p) {
  if (!v.IsArray()) return false;
  auto a = v.As<Napi::Array>();
  if (a.Length() != 5) return false;
  double f[5];
  for (uint32_t i = 0; i < 5; i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) return false;
    f[i] = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(f[i]) || f[i] < 0) return false;
  }
  // Bounds that keep every sum and cast below in range: delays up to 10^15
  // ns (11 days), a rate of at least a byte a second, up to 10^9 frames.
  if (f[0] > 1e15 || f[1] > 1e15 || f[2] > 1 || (f[3] != 0 && f[3] < 1) || f[4] < 1 || f[4] > 1e9)
    return false;
  p->delayNs = static_cast<int64_t>(f[0]);
  p->jitterNs = static_cast<int64_t>(f[1]);
  p->loss = f[2];
  p->rateBytes = f[3];
  p->limit = static_cast<size_t>(f[4]);
  return true;
}

Napi::Value StatsArray(Napi::Env env, const Counters& c, size_t queued, int err) {
  double v[] = {c.frames, c.delivered, c.lost, c.overflowed, c.failed, static_cast<double>(queued),
                static_cast<double>(err)};
  Napi::Array out = Napi::Array::New(env, 7);
  for (uint32_t i = 0; i < 7; i++) out.Set(i, Napi::Number::New(env, v[i]));
  return out;
}

// delayLineSockets(nsfd, tapName, ifindex, mark): [tapFd, packetFd], made
// inside the namespace on a fresh thread.
Napi::Value JsSockets(const Napi::CallbackInfo& info) {
  NsFd ns;
  Outcome o = DupNsFdOnCallingThread(info[0].As<Napi::Number>().Int32Value(), &ns);
  if (o.err) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Reject(SysError(info.Env(), o.err, o.syscall, o.path).Value());
    return d.Promise();
  }
  std::string tap = info[1].As<Napi::String>().Utf8Value();
  int ifindex = info[2].As<Napi::Number>().Int32Value();
  uint32_t mark = info[3].As<Napi::Number>().Uint32Value();
  return OnFreshThread(info.Env(), [=]() { return LineSocketsOnThisThread(ns, tap, ifindex, mark); });
}

// delayLineStart(inFd, outFd, params): the line's id. Owns both fds from
// the call on (closes them itself when it fails).
Napi::Value JsStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int in = info[0].As<Napi::Number>().Int32Value();
  int out = info[1].As<Napi::Number>().Int32Value();
  Params p;
  const char* syscall = nullptr;
  int e = ReadParams(info[2], &p) ? Lines().Ensure(&syscall) : EINVAL;
  if (e != 0) {
    close(in);
    close(out);
    return OutcomeToValue(env, Outcome::Fail(e, syscall ? syscall : "delayLineStart"));
  }
  return OutcomeToValue(env, Lines().Add(in, out, p));
}

// delayLineSet(id, params): false for an unknown line.
Napi::Value JsSet(const Napi::CallbackInfo& info) {
  Params p;
  if (!ReadParams(info[1], &p)) return OutcomeToValue(info.Env(), Outcome::Fail(EINVAL, "delayLineSet"));
  return Napi::Boolean::New(info.Env(), Lines().Set(info[0].As<Napi::Number>().Uint32Value(), p));
}

// delayLineStats(id): [frames, delivered, lost, overflowed, failed, queued,
// errno], or undefined for an unknown line.
Napi::Value JsStats(const Napi::CallbackInfo& info) {
  Counters c;
  size_t queued;
  int err;
  if (!Lines().Stats(info[0].As<Napi::Number>().Uint32Value(), &c, &queued, &err)) return info.Env().Undefined();
  return StatsArray(info.Env(), c, queued, err);
}

// delayLineClose(id): the final stats (what was queued is dropped), or
// undefined for an unknown line.
Napi::Value JsClose(const Napi::CallbackInfo& info) {
  Counters c;
  size_t queued;
  int err;
  if (!Lines().Close(info[0].As<Napi::Number>().Uint32Value(), &c, &queued, &err)) return info.Env().Undefined();
  return StatsArray(info.Env(), c, queued, err);
}

// loadSchedCls(insns, license): a BPF_PROG_TYPE_SCHED_CLS program's fd
// (O_CLOEXEC, as every bpf fd). The kernel's verifier log is not kept:
// the programs are fixed and tested; errno says why one is refused.
Napi::Value JsLoadSchedCls(const Napi::CallbackInfo& info) {
  auto insns = info[0].As<Napi::Buffer<uint8_t>>();
  std::string license = info[1].As<Napi::String>().Utf8Value();
  if (insns.Length() == 0 || insns.Length() % sizeof(bpf_insn) != 0)
    return OutcomeToValue(info.Env(), Outcome::Fail(EINVAL, "bpf"));
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  attr.insn_cnt = static_cast<uint32_t>(insns.Length() / sizeof(bpf_insn));
  attr.insns = reinterpret_cast<uint64_t>(insns.Data());
  attr.license = reinterpret_cast<uint64_t>(license.c_str());
  memcpy(attr.prog_name, "podnet_delay", sizeof "podnet_delay");
  long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
  if (fd < 0) return OutcomeToValue(info.Env(), Outcome::Fail(errno, "bpf"));
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

}  // namespace

void InitDelayLine(Napi::Env env, Napi::Object exports) {
  exports.Set("delayLineSockets", Napi::Function::New(env, JsSockets, "delayLineSockets"));
  exports.Set("delayLineStart", Napi::Function::New(env, JsStart, "delayLineStart"));
  exports.Set("delayLineSet", Napi::Function::New(env, JsSet, "delayLineSet"));
  exports.Set("delayLineStats", Napi::Function::New(env, JsStats, "delayLineStats"));
  exports.Set("delayLineClose", Napi::Function::New(env, JsClose, "delayLineClose"));
  exports.Set("loadSchedCls", Napi::Function::New(env, JsLoadSchedCls, "loadSchedCls"));
}

}  // namespace podnet
