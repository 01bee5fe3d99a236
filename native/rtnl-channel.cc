// A NETLINK_ROUTE socket driven from the event loop: the socket of a
// `watch` (multicast groups joined, dumps asked for) and the socket of the
// asynchronous statistics reads and the sweeps. The fd was opened inside its
// namespace (socketIn, on a thread of its own); from then on every call here
// runs on the JS thread, never on the libuv pool.
//
// rtnetlink answers a request inside sendmsg: the reply is normally queued
// on the socket before send returns, so a read is tried at once, without
// blocking (MSG_DONTWAIT). Only when nothing is there yet (a dump's later
// parts, a multicast event) is the fd watched by the event loop (uv_poll),
// and each datagram read is handed to JavaScript, which decodes it.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "common.h"
#include "rtnl-stats.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace podnet {
namespace {

// stats() and a sweep's read(): the request is sent and its reply not there yet.
constexpr int kPending = -1000002;
// A sweep's read() left this member out, as asked.
constexpr int kSkipped = -1000003;
// Datagrams read in one readable callback before the loop gets a turn.
constexpr int kReadBudget = 64;

uint32_t RequestSeq(const char* req, size_t len) {
  nlmsghdr h;
  if (len < sizeof h) return 0;
  memcpy(&h, req, sizeof h);
  return h.nlmsg_seq;
}

// A reply's sequence number is where a request's is.
uint32_t ReplySeq(const char* p, size_t len) { return RequestSeq(p, len); }

double MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Marks the JS objects that wrap an RtnlChannel, so StatsSweep can check
// what it is given before unwrapping it (napi_type_tag_object).
constexpr napi_type_tag kChannelTag = {0x706f646e65747263ULL, 0x686e6c5f63686e31ULL};

class RtnlChannel : public Napi::ObjectWrap<RtnlChannel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RtnlChannel",
                                   {InstanceMethod("join", &RtnlChannel::Join),
                                    InstanceMethod("receiveBuffer", &RtnlChannel::ReceiveBuffer),
                                    InstanceMethod("portId", &RtnlChannel::PortId),
                                    InstanceMethod("send", &RtnlChannel::Send),
                                    InstanceMethod("read", &RtnlChannel::Read),
                                    InstanceMethod("stats", &RtnlChannel::Stats),
                                    InstanceMethod("poll", &RtnlChannel::Poll),
                                    InstanceMethod("close", &RtnlChannel::Close)});
  }

  // new RtnlChannel(fd, buf, onData): owns FD from now on. Every datagram
  // the loop reads lands in BUF (a Buffer JavaScript keeps and decodes from
  // inside the callback), then onData(len, 0) runs; a failed read is
  // onData(0, errno) (ENOBUFS: the socket overflowed and events were lost).
  explicit RtnlChannel(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<RtnlChannel>(info), context_(info.Env(), "podnet:rtnl") {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    auto buf = info[1].As<Napi::Buffer<char>>();
    buf_ = buf.Data();
    bufLen_ = buf.Length();
    bufRef_ = Napi::Persistent(buf);
    onData_ = Napi::Persistent(info[2].As<Napi::Function>());
    info.This().As<Napi::Object>().TypeTag(&kChannelTag);
    // The fd is this object's alone: non-blocking, so no read can stall the loop.
    int fl = fcntl(fd_, F_GETFL);
    if (fl >= 0) fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
    // A port id comes with bind, or else with the first send; bound here
    // (nl_pid 0: the kernel chooses), so portId() knows it before anything
    // is sent. Before any join: a bind with no groups would drop them. A
    // socket bound already (EINVAL) keeps its id.
    sockaddr_nl any{};
    any.nl_family = AF_NETLINK;
    bind(fd_, reinterpret_cast<sockaddr*>(&any), sizeof any);
    // Connected to the kernel (which joining groups does not change), a send
    // names no address for the kernel to copy and check: a sweep sends one
    // per namespace.
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0;
  }

  ~RtnlChannel() override { Shut(); }

  int fd() const { return fd_; }

  // One non-blocking recv into the buffer, skipping datagrams that answer
  // another sequence number (WANT 0: take any). Returns the length, or
  // -errno (-EAGAIN: nothing there yet).
  ssize_t RecvNow(uint32_t want) { return RecvInto(buf_, bufLen_, want); }

  // The same into another buffer (a sweep reads every reply into one).
  ssize_t RecvInto(char* into, size_t len, uint32_t want) {
    for (;;) {
      ssize_t n = NetlinkRecv(fd_, into, len, MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0) {
        if (n == -EINTR) continue;
        return n;
      }
      if (static_cast<size_t>(n) > len) return -EMSGSIZE;  // dropped by the kernel already
      if (want != 0 && ReplySeq(into, static_cast<size_t>(n)) != want) continue;  // a stale reply
      return n;
    }
  }

  int SendRaw(const char* req, size_t len) {
    if (fd_ < 0) return -EBADF;
    if (len < sizeof(nlmsghdr)) return -EINVAL;
    ssize_t n;
    do {
      n = NetlinkSend(fd_, req, len, connected_);
    } while (n == -EINTR);
    return n < 0 ? static_cast<int>(n) : 0;
  }

 private:
  Napi::Value Fail(Napi::Env env, int err, const char* call) {
    return OutcomeToValue(env, Outcome::Fail(err, call));
  }

  // join(group): NETLINK_ADD_MEMBERSHIP (RTNLGRP_*).
  Napi::Value Join(const Napi::CallbackInfo& info) {
    int group = info[0].As<Napi::Number>().Int32Value();
    if (setsockopt(fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
      return Fail(info.Env(), errno, "setsockopt");
    }
    return info.Env().Undefined();
  }

  // receiveBuffer(bytes): SO_RCVBUFFORCE (past rmem_max, with
  // CAP_NET_ADMIN), else SO_RCVBUF; returns the size the kernel set.
  Napi::Value ReceiveBuffer(const Napi::CallbackInfo& info) {
    int bytes = info[0].As<Napi::Number>().Int32Value();
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0 &&
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) {
      return Fail(info.Env(), errno, "setsockopt");
    }
    int got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0) return Fail(info.Env(), errno, "getsockopt");
    return Napi::Number::New(info.Env(), got);
  }

  // portId(): the socket's netlink port id, which the kernel's replies to
  // this socket carry in nlmsg_pid.
  Napi::Value PortId(const Napi::CallbackInfo& info) {
    sockaddr_nl local{};
    socklen_t len = sizeof local;
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      return Fail(info.Env(), errno, "getsockname");
    }
    return Napi::Number::New(info.Env(), local.nl_pid);
  }

  // send(req): the request as JavaScript framed it (its sequence number in).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    auto req = info[0].As<Napi::Buffer<char>>();
    int rc = SendRaw(req.Data(), req.Length());
    if (rc < 0) return Fail(info.Env(), -rc, "sendto");
    return info.Env().Undefined();
  }

  // read(): one datagram into the buffer if one is there: its length, or
  // -errno (-EAGAIN when none is).
  Napi::Value Read(const Napi::CallbackInfo& info) {
    if (fd_ < 0) return Fail(info.Env(), EBADF, "recv");
    return Napi::Number::New(info.Env(), static_cast<double>(RecvNow(0)));
  }

  // stats(req, out): sends an RTM_GETSTATS (or RTM_GETLINK) for one link
  // and, when its reply is already there, decodes the counters into OUT
  // (DecodeStats's result); kPending when the reply is still to come (it
  // then reaches onData like any datagram). JavaScript calls it only while
  // no other request is outstanding, so any other reply read here is stale.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto req = info[0].As<Napi::Buffer<char>>();
    auto out = info[1].As<Napi::Float64Array>();
    if (out.ElementLength() < kStatsFields) return Fail(env, EINVAL, "stats");
    int rc = SendRaw(req.Data(), req.Length());
    if (rc < 0) return Fail(env, -rc, "sendto");
    ssize_t n = RecvNow(RequestSeq(req.Data(), req.Length()));
    if (n == -EAGAIN || n == -EWOULDBLOCK) return Napi::Number::New(env, kPending);
    if (n < 0) return Fail(env, static_cast<int>(-n), "recv");
    return Napi::Number::New(env, DecodeStats(buf_, static_cast<size_t>(n), out.Data()));
  }

  // poll(on, ref): whether the event loop watches the fd, and whether that
  // keeps the loop alive (a consumer is waiting) or not.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool on = info[0].As<Napi::Boolean>().Value();
    bool ref = info[1].As<Napi::Boolean>().Value();
    if (fd_ < 0) return env.Undefined();
    if (on && poll_ == nullptr) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return Fail(env, EINVAL, "uv_poll");
      poll_ = new uv_poll_t;
      int rc = uv_poll_init(loop, poll_, fd_);
      if (rc != 0) {
        delete poll_;
        poll_ = nullptr;
        return Fail(env, -rc, "uv_poll_init");
      }
      poll_->data = this;
    }
    if (poll_ == nullptr) return env.Undefined();
    if (on != polling_) {
      int rc = on ? uv_poll_start(poll_, UV_READABLE, OnReadable) : uv_poll_stop(poll_);
      if (rc != 0) return Fail(env, -rc, "uv_poll_start");
      polling_ = on;
    }
    if (ref) {
      uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    }
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    return info.Env().Undefined();
  }

  // The poll handle is unregistered before the fd is closed (the number may
  // be reused at once); its memory is freed by libuv's close callback.
  void Shut() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    polling_ = false;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  static void OnReadable(uv_poll_t* h, int status, int) {
    auto* self = static_cast<RtnlChannel*>(h->data);
    if (self == nullptr) return;
    // libuv reports POLLERR as UV_EBADF and stops the handle. On a netlink
    // socket POLLERR is a pending socket error, ENOBUFS above all (events
    // were dropped): the poll is started again and the recv below reads
    // the error itself (a really bad fd reads as EBADF there).
    if (status < 0 && self->polling_) uv_poll_start(h, UV_READABLE, OnReadable);
    self->Drain();
  }

  // Reads what is there, one datagram per onData call, until nothing is,
  // the budget is spent, or JavaScript stopped the poll or closed the
  // channel from inside a callback (both are checked after each one).
  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int i = 0; i < kReadBudget && polling_ && fd_ >= 0; i++) {
      ssize_t n = RecvNow(0);
      if (n == -EAGAIN || n == -EWOULDBLOCK) break;
      if (n < 0) {
        Deliver(env, 0, static_cast<int>(-n));
        // ENOBUFS is reported once and reading goes on; anything else is
        // for JavaScript to act on before the next turn.
        if (n != -ENOBUFS) break;
        continue;
      }
      Deliver(env, static_cast<double>(n), 0);
    }
  }

  void Deliver(Napi::Env env, double len, int err) {
    onData_.MakeCallback(Value(), {Napi::Number::New(env, len), Napi::Number::New(env, err)}, context_);
    // A throw from the callback has nobody to catch it here: it becomes an
    // uncaught exception, as one from any event-loop callback does.
    if (env.IsExceptionPending()) {
      napi_fatal_exception(env, env.GetAndClearPendingException().Value());
    }
  }

  int fd_ = -1;
  char* buf_ = nullptr;
  size_t bufLen_ = 0;
  Napi::Reference<Napi::Buffer<char>> bufRef_;
  Napi::FunctionReference onData_;
  Napi::AsyncContext context_;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  bool connected_ = false;
};

// A statistics read of one link in each of N namespaces, made once and
// read many times: new StatsSweep(channels, reqs) keeps each channel (a
// reference, so it outlives no read) and a copy of its RTM_GETSTATS
// request. read() is one native call for all N, with no N-API work per
// namespace: each request is sent and its reply read, namespace after
// namespace.
class StatsSweep : public Napi::ObjectWrap<StatsSweep> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StatsSweep",
                       {InstanceMethod("read", &StatsSweep::Read), InstanceMethod("setRequest", &StatsSweep::SetRequest)});
  }

  explicit StatsSweep(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StatsSweep>(info) {
    Napi::Env env = info.Env();
    auto channels = info[0].As<Napi::Array>();
    auto reqs = info[1].As<Napi::Array>();
    if (reqs.Length() != channels.Length()) {
      SysError(env, EINVAL, "StatsSweep", std::string()).ThrowAsJavaScriptException();
      return;
    }
    for (uint32_t i = 0; i < channels.Length(); i++) {
      Napi::Value c = channels[i];
      if (!c.IsObject() || !c.As<Napi::Object>().CheckTypeTag(&kChannelTag)) {
        SysError(env, EINVAL, "StatsSweep", std::string()).ThrowAsJavaScriptException();
        return;
      }
      members_.push_back(Member{RtnlChannel::Unwrap(c.As<Napi::Object>()), Napi::Persistent(c.As<Napi::Object>()), {}});
      if (!SetRequestAt(env, i, reqs[i])) return;
    }
  }

 private:
  struct Member {
    RtnlChannel* chan;
    Napi::ObjectReference ref;  // keeps chan alive
    std::vector<char> req;
  };

  bool SetRequestAt(Napi::Env env, uint32_t i, Napi::Value r) {
    if (i >= members_.size() || !r.IsBuffer() || r.As<Napi::Buffer<char>>().Length() < sizeof(nlmsghdr)) {
      SysError(env, EINVAL, "StatsSweep", std::string()).ThrowAsJavaScriptException();
      return false;
    }
    auto b = r.As<Napi::Buffer<char>>();
    members_[i].req.assign(b.Data(), b.Data() + b.Length());
    return true;
  }

  // setRequest(i, req): member I's request from now on (its link's index changed).
  Napi::Value SetRequest(const Napi::CallbackInfo& info) {
    SetRequestAt(info.Env(), info[0].As<Napi::Number>().Uint32Value(), info[1]);
    return info.Env().Undefined();
  }

  // read(out, results, skip, timeoutMs): RESULTS[i] is DecodeStats's result
  // for member i (its counters at OUT[25i..]), a negative errno, kPending
  // when its reply did not come within timeoutMs, or kSkipped when SKIP[i]
  // was set (its channel has a request of its own in flight, whose reply
  // this read must not consume).
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto out = info[0].As<Napi::Float64Array>();
    auto results = info[1].As<Napi::Int32Array>();
    auto skip = info[2].As<Napi::Uint8Array>();
    double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
    const size_t n = members_.size();
    if (out.ElementLength() < n * kStatsFields || results.ElementLength() < n || skip.ElementLength() < n) {
      return OutcomeToValue(env, Outcome::Fail(EINVAL, "StatsSweep.read"));
    }
    int32_t* res = results.Data();
    const uint8_t* sk = skip.Data();
    // Sequence numbers of their own (high bit set), apart from those the
    // channel's JavaScript side stamps, so no reply can be taken for another.
    const uint32_t seq = 0x80000000u | (++seq_ & 0x7fffffffu);
    const double deadline = MonotonicMs() + timeoutMs;
    // Each reply is read right after its request: rtnetlink answers inside
    // sendmsg, so it is there already, and the kernel frees the reply while
    // it is still in cache (sending all first and then reading all measured
    // 10% slower, in C too: bench/c/stats-floor.c sweepstats, sweepstats1).
    for (size_t i = 0; i < n; i++) {
      if (sk[i]) {
        res[i] = kSkipped;
        continue;
      }
      std::vector<char>& req = members_[i].req;
      memcpy(req.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
      RtnlChannel* c = members_[i].chan;
      const int sent = c->SendRaw(req.data(), req.size());
      if (sent < 0) {
        res[i] = sent;
        continue;
      }
      ssize_t got;
      for (;;) {
        // One buffer for every reply: the same few cache lines each time.
        got = c->RecvInto(buf_.data(), buf_.size(), seq);
        if (got != -EAGAIN && got != -EWOULDBLOCK) break;
        double left = deadline - MonotonicMs();
        if (left <= 0) break;
        pollfd p{c->fd(), POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left) + 1) < 0 && errno != EINTR) break;
      }
      if (got == -EAGAIN || got == -EWOULDBLOCK) {
        res[i] = kPending;
      } else if (got < 0) {
        res[i] = static_cast<int32_t>(got);
      } else {
        res[i] = DecodeStats(buf_.data(), static_cast<size_t>(got), out.Data() + i * kStatsFields);
      }
    }
    return env.Undefined();
  }

  std::vector<Member> members_;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
  uint32_t seq_ = 0;
};

}  // namespace

void InitRtnlChannel(Napi::Env env, Napi::Object exports) {
  exports.Set("RtnlChannel", RtnlChannel::Define(env));
  exports.Set("StatsSweep", StatsSweep::Define(env));
  exports.Set("STATS_PENDING", Napi::Number::New(env, kPending));
  exports.Set("STATS_SKIPPED", Napi::Number::New(env, kSkipped));
}

}  // namespace podnet
