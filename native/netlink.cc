// A NETLINK_ROUTE socket bound to one namespace for its whole life. The fd
// is opened inside the namespace once (socketIn) and then used from any
// thread: a request is sendto + recv, no setns, no thread. Replies are only
// framed here (message boundaries and sequence numbers); their contents are
// decoded, with bounds checks, in TypeScript (the counters of a statistics
// read in native/rtnl-stats.cc).
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "common.h"
#include "rtnl-stats.h"

namespace podnet {
namespace {

constexpr size_t kRecvBuf = 64 * 1024;  // the kernel sends at most 32 KiB a datagram

class RtnlSocket : public Napi::ObjectWrap<RtnlSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RtnlSocket",
                       {InstanceMethod("request", &RtnlSocket::Request),
                        InstanceMethod("requestAsync", &RtnlSocket::RequestAsync),
                        InstanceMethod("stats", &RtnlSocket::Stats),
                        InstanceMethod("statsReader", &RtnlSocket::StatsReader),
                        InstanceMethod("close", &RtnlSocket::Close)});
  }

  // new RtnlSocket(fd, counters?): owns FD from now on. COUNTERS, a
  // Float64Array of at least 25, is where statsReader()'s function writes; kept referenced
  // so its memory stays put.
  explicit RtnlSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RtnlSocket>(info) {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    if (info.Length() > 1 && info[1].IsTypedArray()) {
      auto c = info[1].As<Napi::TypedArray>();
      if (c.TypedArrayType() == napi_float64_array && c.ElementLength() >= kStatsFields) {
        auto f = info[1].As<Napi::Float64Array>();
        counters_ = f.Data();
        countersRef_ = Napi::Persistent(f);
      }
    }
    // A kernel that never answers must not hang a caller forever.
    struct timeval tv = {5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    // Connected to the kernel, a send names no address: the kernel then
    // copies and checks none on each request. Unconnected (it failed), each
    // send names the kernel.
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) == 0;
    buf_.resize(kRecvBuf);
  }

  ~RtnlSocket() override {
    if (fd_ >= 0) close(fd_);
  }

  // Sends REQ and collects every reply message with its sequence number
  // into out. Caller holds mu_.
  Outcome Transact(std::vector<char>& req, std::vector<char>& out) {
    if (fd_ < 0) return Outcome::Fail(EBADF, "sendto");
    if (req.size() < sizeof(nlmsghdr)) return Outcome::Fail(EINVAL, "sendto");
    uint32_t seq = ++seq_;
    auto* hdr = reinterpret_cast<nlmsghdr*>(req.data());
    hdr->nlmsg_seq = seq;
    hdr->nlmsg_pid = 0;
    ssize_t n = NetlinkSend(fd_, req.data(), req.size(), connected_);
    if (n < 0) return Outcome::Fail(static_cast<int>(-n), "sendto");
    out.clear();
    for (;;) {
      n = NetlinkRecv(fd_, buf_.data(), buf_.size(), MSG_TRUNC);
      if (n < 0) {
        if (n == -EINTR) continue;
        return Outcome::Fail(static_cast<int>(-n), "recv");
      }
      if (static_cast<size_t>(n) > buf_.size()) return Outcome::Fail(EMSGSIZE, "recv");
      size_t off = 0, len = static_cast<size_t>(n);
      bool done = false;
      while (off + sizeof(nlmsghdr) <= len) {
        auto* m = reinterpret_cast<nlmsghdr*>(buf_.data() + off);
        if (m->nlmsg_len < sizeof(nlmsghdr) || m->nlmsg_len > len - off) return Outcome::Fail(EBADMSG, "recv");
        size_t step = NLMSG_ALIGN(m->nlmsg_len);
        // Replies to an earlier request (one that timed out) are dropped.
        if (m->nlmsg_seq == seq) {
          out.insert(out.end(), buf_.data() + off, buf_.data() + off + m->nlmsg_len);
          // Keep 4-byte alignment of the next message in out.
          out.resize(out.size() + (NLMSG_ALIGN(m->nlmsg_len) - m->nlmsg_len), 0);
          if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR || !(m->nlmsg_flags & NLM_F_MULTI)) done = true;
        }
        off += step;
      }
      if (done) return Outcome::Ok(static_cast<int64_t>(out.size()));
    }
  }

  // request(req: Buffer, resp: Buffer): number | Buffer. Copies the reply
  // into RESP and returns its length when it fits (the hot path for stats:
  // no allocation), else returns a new Buffer.
  Napi::Value Request(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto reqBuf = info[0].As<Napi::Buffer<char>>();
    std::lock_guard<std::mutex> lock(mu_);
    req_.assign(reqBuf.Data(), reqBuf.Data() + reqBuf.Length());
    Outcome o = Transact(req_, out_);
    if (o.err) return OutcomeToValue(env, o);
    if (info.Length() > 1 && info[1].IsBuffer()) {
      auto resp = info[1].As<Napi::Buffer<char>>();
      if (out_.size() <= resp.Length()) {
        memcpy(resp.Data(), out_.data(), out_.size());
        return Napi::Number::New(env, static_cast<double>(out_.size()));
      }
    }
    return Napi::Buffer<char>::Copy(env, out_.data(), out_.size());
  }

  // stats(req: Buffer, out: Float64Array(25)): number. Sends an RTM_GETSTATS
  // (or RTM_GETLINK) for one link and decodes its counters into out without building any JS
  // object: the result of DecodeStats.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto reqBuf = info[0].As<Napi::Buffer<char>>();
    auto out = info[1].As<Napi::Float64Array>();
    if (out.ElementLength() < kStatsFields) return OutcomeToValue(env, Outcome::Fail(EINVAL, "stats"));
    std::lock_guard<std::mutex> lock(mu_);
    req_.assign(reqBuf.Data(), reqBuf.Data() + reqBuf.Length());
    Outcome o = Transact(req_, out_);
    if (o.err) return OutcomeToValue(env, o);
    return Napi::Number::New(env, DecodeStats(out_.data(), out_.size(), out.Data()));
  }

  // statsReader(): (index: number) => number. A function that does stats()
  // for the RTM_GETSTATS (IFLA_STATS_LINK_64) of link INDEX, into the
  // constructor's counters: linkStatsSync's hot path. Only numbers cross
  // N-API (reading a Buffer's and a Float64Array's info cost more than the
  // rest of the call outside the kernel), and the function carries this
  // socket as its data, so no call pays for unwrapping `this` (a private
  // property lookup); a read-only, non-configurable property of the
  // function holds the socket's object, so the socket lives as long as the
  // function. The result is DecodeStats's, or a negative errno (EINVAL: no
  // counters were given; EBADF: closed) that the caller's slow path turns
  // into an error by reading again.
  Napi::Value StatsReader(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    napi_value fn;
    if (napi_create_function(env, "statsOf", NAPI_AUTO_LENGTH, StatsOfCallback, this, &fn) != napi_ok) {
      return env.Undefined();
    }
    napi_property_descriptor owner = {"socket", nullptr, nullptr, nullptr, nullptr, info.This(), napi_default, nullptr};
    if (napi_define_properties(env, fn, 1, &owner) != napi_ok) return env.Undefined();
    return Napi::Value(env, fn);
  }

  static napi_value StatsOfCallback(napi_env env, napi_callback_info cbinfo) {
    size_t argc = 1;
    napi_value arg;
    void* data = nullptr;
    uint32_t index = 0;
    int32_t r = -EINVAL;
    if (napi_get_cb_info(env, cbinfo, &argc, &arg, nullptr, &data) == napi_ok && argc == 1 &&
        napi_get_value_uint32(env, arg, &index) == napi_ok) {
      r = static_cast<RtnlSocket*>(data)->ReadStatsOf(index);
    }
    napi_value out = nullptr;
    napi_create_int32(env, r, &out);
    return out;
  }

  // One RTM_GETSTATS round trip for link INDEX, decoded into counters_.
  int32_t ReadStatsOf(uint32_t index) {
    if (counters_ == nullptr) return -EINVAL;
    // Only a requestAsync on the pool can use the socket at the same time,
    // and those are counted on this (the JS) thread: with none queued the
    // lock is skipped (it cost 10-20 ns of a 1 us read). A worker's writes
    // are visible here once it has completed: libuv hands the completion
    // to this thread through its own synchronisation.
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (asyncQueued_ > 0) lock.lock();
    if (fd_ < 0) return -EBADF;
    const uint32_t seq = ++seq_;
    struct {
      nlmsghdr h;
      if_stats_msg s;
    } req{};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.s);
    req.h.nlmsg_type = RTM_GETSTATS;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.h.nlmsg_seq = seq;
    req.s.family = AF_UNSPEC;
    req.s.ifindex = index;
    req.s.filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
    ssize_t n = NetlinkSend(fd_, &req, req.h.nlmsg_len, connected_);
    if (n < 0) return static_cast<int32_t>(n);
    for (;;) {
      n = NetlinkRecv(fd_, buf_.data(), buf_.size(), MSG_TRUNC);
      if (n == -EINTR) continue;
      if (n < 0) return static_cast<int32_t>(n);
      const size_t len = static_cast<size_t>(n);
      if (len > buf_.size()) return -EMSGSIZE;
      // Replies to an earlier request (one that timed out) are skipped, as
      // in Transact; a reply of ours is one message.
      size_t off = 0;
      while (off + sizeof(nlmsghdr) <= len) {
        nlmsghdr m;
        memcpy(&m, buf_.data() + off, sizeof m);
        if (m.nlmsg_len < sizeof(nlmsghdr) || m.nlmsg_len > len - off) return -EBADMSG;
        if (m.nlmsg_seq == seq) return DecodeStats(buf_.data() + off, len - off, counters_);
        off += NLMSG_ALIGN(m.nlmsg_len);
      }
    }
  }

  // requestAsync(req: Buffer): Promise<Buffer>, on the libuv pool (no
  // namespace switch is involved: the socket already lives in its namespace).
  Napi::Value RequestAsync(const Napi::CallbackInfo& info);

  Napi::Value Close(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  std::mutex mu_;
  // requestAsync calls queued and not yet completed; changed and read on
  // the JS thread only.
  int asyncQueued_ = 0;

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
  std::vector<char> buf_, req_, out_;
  bool connected_ = false;
  double* counters_ = nullptr;
  Napi::Reference<Napi::Float64Array> countersRef_;
};

class RequestWorker : public Napi::AsyncWorker {
 public:
  RequestWorker(Napi::Env env, RtnlSocket* sock, Napi::Object self, std::vector<char> req)
      : Napi::AsyncWorker(env, "podnet:netlink"),
        sock_(sock),
        req_(std::move(req)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);  // keeps the socket alive while queued
    sock_->asyncQueued_++;
  }

  // On the JS thread, once the work has completed (or was cancelled);
  // self_ still holds the socket here.
  ~RequestWorker() override { sock_->asyncQueued_--; }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::lock_guard<std::mutex> lock(sock_->mu_);
    out_ = sock_->Transact(req_, reply_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err) {
      deferred_.Reject(SysError(env, out_.err, out_.syscall, out_.path).Value());
    } else {
      deferred_.Resolve(Napi::Buffer<char>::Copy(env, reply_.data(), reply_.size()));
    }
  }

 private:
  RtnlSocket* sock_;
  Napi::ObjectReference self_;
  std::vector<char> req_, reply_;
  Outcome out_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value RtnlSocket::RequestAsync(const Napi::CallbackInfo& info) {
  auto reqBuf = info[0].As<Napi::Buffer<char>>();
  std::vector<char> req(reqBuf.Data(), reqBuf.Data() + reqBuf.Length());
  auto* w = new RequestWorker(info.Env(), this, info.This().As<Napi::Object>(), std::move(req));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// decodeStats(buf, len, out): DecodeStats over captured bytes, so the C++
// decoder is tested from the same fixtures as the TypeScript one.
Napi::Value JsDecodeStats(const Napi::CallbackInfo& info) {
  auto buf = info[0].As<Napi::Buffer<char>>();
  size_t len = info[1].As<Napi::Number>().Uint32Value();
  auto out = info[2].As<Napi::Float64Array>();
  if (len > buf.Length() || out.ElementLength() < kStatsFields) {
    return OutcomeToValue(info.Env(), Outcome::Fail(EINVAL, "decodeStats"));
  }
  return Napi::Number::New(info.Env(), DecodeStats(buf.Data(), len, out.Data()));
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("RtnlSocket", RtnlSocket::Define(env));
  exports.Set("decodeStats", Napi::Function::New(env, JsDecodeStats, "decodeStats"));
  exports.Set("STATS_MALFORMED", Napi::Number::New(env, kStatsMalformed));
  exports.Set("STATS_MISSING", Napi::Number::New(env, kStatsMissing));
}

}  // namespace podnet
