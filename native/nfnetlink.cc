// A NETLINK_NETFILTER socket for nf_tables batch transactions. The batch
// itself (NFNL_MSG_BATCH_BEGIN, the messages, NFNL_MSG_BATCH_END) is
// encoded in TypeScript (src/bridge/nft/); here it is only framed: every
// message is checked to lie within the buffer and numbered, the batch is sent
// in one sendmsg, and the kernel's answer to each message is collected.
//
// nfnetlink handles a batch synchronously inside sendmsg: by the time it
// returns, the kernel has committed or aborted the whole transaction and
// queued every ack and error on this socket (nfnetlink_rcv_batch delivers its
// error list at the end). So the replies are read without waiting
// (MSG_DONTWAIT until EAGAIN); no timeout is involved.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"

#ifndef NETLINK_NETFILTER
#define NETLINK_NETFILTER 12
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace podnet {
namespace {

constexpr size_t kRecvBuf = 64 * 1024;
// A batch is one datagram, which must fit the send buffer (EMSGSIZE); each
// ack the kernel queues costs receive buffer (its skb's truesize), and a
// batch's acks all arrive before the first is read: the buffer must hold
// them all, or the kernel drops some (ENOBUFS).
constexpr int kSockBufBytes = 32 * 1024 * 1024;
constexpr size_t kNfgenmsgLen = 4;

// The result of a batch: per message, 1 when the kernel acked it, a
// negative errno when it refused it, 0 when it said nothing about it.
struct BatchAnswer {
  std::vector<int> result;
  bool malformed = false;  // a reply that does not frame
};

// Reads the replies in [p, p+len) to a batch numbered from BASE (COUNT
// messages) into ANSWER. An error answer sticks: the kernel reports a
// failed commit against the first message before that message's own ack.
// Replies to other sequence numbers (an earlier socket user's) are
// skipped. Every length is checked against the bytes that are there.
void ScanReplies(const char* p, size_t len, uint32_t base, uint32_t count, BatchAnswer* answer) {
  size_t off = 0;
  while (off + sizeof(nlmsghdr) <= len) {
    nlmsghdr h;
    memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > len - off) {
      answer->malformed = true;
      return;
    }
    uint32_t index = h.nlmsg_seq - base;  // wraps for a sequence below BASE
    if (h.nlmsg_type == NLMSG_ERROR && index < count) {
      if (h.nlmsg_len < sizeof(nlmsghdr) + sizeof(int32_t)) {
        answer->malformed = true;
        return;
      }
      int32_t code;
      memcpy(&code, p + off + sizeof(nlmsghdr), sizeof code);
      int& slot = answer->result[index];
      if (code < 0) {
        if (slot >= 0) slot = code;
      } else if (slot == 0) {
        slot = 1;
      }
    }
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  if (off < len) answer->malformed = true;  // trailing bytes too short for a header
}

// Walks a batch buffer: every message at least a header and a nfgenmsg,
// inside the buffer, 4-byte aligned, at least MIN of them. Returns the
// message offsets, or an empty list when the buffer is not that.
std::vector<size_t> FrameBatch(const char* p, size_t len, size_t min) {
  std::vector<size_t> offsets;
  size_t off = 0;
  while (off < len) {
    if (len - off < sizeof(nlmsghdr)) return {};
    nlmsghdr h;
    memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < sizeof(nlmsghdr) + kNfgenmsgLen || h.nlmsg_len > len - off) return {};
    offsets.push_back(off);
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    if (step > len - off) return {};  // the last message's padding is missing
    off += step;
  }
  if (offsets.size() < min) return {};
  return offsets;
}

class NfnlSocket : public Napi::ObjectWrap<NfnlSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NfnlSocket",
                       {InstanceMethod("batch", &NfnlSocket::Batch), InstanceMethod("request", &NfnlSocket::Request),
                        InstanceMethod("close", &NfnlSocket::Close)});
  }

  // new NfnlSocket(fd?): FD is a NETLINK_NETFILTER socket opened elsewhere
  // (inside another namespace) and owned from now on; without it, one is
  // opened here, on the calling thread, so in this thread's namespace.
  explicit NfnlSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NfnlSocket>(info) {
    if (info.Length() > 0 && info[0].IsNumber()) {
      fd_ = info[0].As<Napi::Number>().Int32Value();
    } else {
      fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      if (fd_ < 0) {
        SysError(info.Env(), errno, "socket", "").ThrowAsJavaScriptException();
        return;
      }
    }
    // An error answer then carries the header only, not the whole message back.
    int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    // FORCE needs CAP_NET_ADMIN, which changing nf_tables needs anyway;
    // without it the plain option still raises the buffer up to rmem_max.
    int size = kSockBufBytes;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    buf_.resize(kRecvBuf);
  }

  ~NfnlSocket() override {
    if (fd_ >= 0) close(fd_);
  }

  // batch(buf: Buffer): [index, errno] | null. Numbers every message,
  // sends the batch, and returns null when the kernel acked every message
  // that asked for an ack (NLM_F_ACK) and refused none, else the first
  // message it refused (index in the batch, positive errno). A message that
  // asked for an ack and got no answer is reported as [index, 0]. (BEGIN and
  // END should not ask: older kernels never ack them.) Throws for a
  // buffer that is not a batch (EINVAL) and for a failed sendmsg or recv.
  Napi::Value Batch(const Napi::CallbackInfo& info) { return Transact(info, 2, "batch"); }

  // request(msg: Buffer): [0, errno] | null. One message outside a batch
  // (a GETTABLE, say), answered the same way; data replies are skipped.
  Napi::Value Request(const Napi::CallbackInfo& info) { return Transact(info, 1, "request"); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

 private:
  // A batch (MIN 2: BEGIN ... END) or a single request (MIN 1: exactly one).
  Napi::Value Transact(const Napi::CallbackInfo& info, size_t min, const char* what) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) return OutcomeToValue(env, Outcome::Fail(EINVAL, what));
    auto in = info[0].As<Napi::Buffer<char>>();
    if (fd_ < 0) return OutcomeToValue(env, Outcome::Fail(EBADF, "sendmsg"));
    req_.assign(in.Data(), in.Data() + in.Length());
    std::vector<size_t> offsets = FrameBatch(req_.data(), req_.size(), min);
    if (offsets.empty() || (min == 1 && offsets.size() != 1)) return OutcomeToValue(env, Outcome::Fail(EINVAL, what));
    const uint32_t count = static_cast<uint32_t>(offsets.size());
    Outcome drained = Drain(nullptr, 0, 0);  // replies left by an interrupted earlier caller
    if (drained.err) return OutcomeToValue(env, drained);
    const uint32_t base = seq_ + 1;
    seq_ += count;
    std::vector<bool> wantsAck(count);
    for (uint32_t i = 0; i < count; i++) {
      auto* h = reinterpret_cast<nlmsghdr*>(req_.data() + offsets[i]);
      h->nlmsg_seq = base + i;
      h->nlmsg_pid = 0;
      wantsAck[i] = (h->nlmsg_flags & NLM_F_ACK) != 0;
    }
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do {
      n = sendto(fd_, req_.data(), req_.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return OutcomeToValue(env, Outcome::Fail(errno, "sendmsg"));
    BatchAnswer answer;
    answer.result.assign(count, 0);
    Outcome read = Drain(&answer, base, count);
    if (read.err) return OutcomeToValue(env, read);
    if (answer.malformed) return OutcomeToValue(env, Outcome::Fail(EBADMSG, "recv"));
    for (uint32_t i = 0; i < count; i++) {
      int r = answer.result[i];
      if (r < 0 || (r == 0 && wantsAck[i])) {
        Napi::Array out = Napi::Array::New(env, 2);
        out.Set(0u, Napi::Number::New(env, i));
        out.Set(1u, Napi::Number::New(env, r < 0 ? -r : 0));
        return out;
      }
    }
    return env.Null();
  }

  // Reads every reply queued on the socket without waiting, scanning each
  // into ANSWER (none: discards them).
  Outcome Drain(BatchAnswer* answer, uint32_t base, uint32_t count) {
    for (;;) {
      ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Outcome::Ok();
        return Outcome::Fail(errno, "recv");
      }
      if (static_cast<size_t>(n) > buf_.size()) return Outcome::Fail(EMSGSIZE, "recv");
      if (answer) ScanReplies(buf_.data(), static_cast<size_t>(n), base, count, answer);
    }
  }

  int fd_ = -1;
  uint32_t seq_ = 0;
  std::vector<char> buf_, req_;
};

// scanBatchReplies(buf, base, count): ScanReplies over captured bytes, for
// the unit tests: the per-message results, or null for replies that do
// not frame.
Napi::Value JsScanBatchReplies(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[0].As<Napi::Buffer<char>>();
  uint32_t base = info[1].As<Napi::Number>().Uint32Value();
  uint32_t count = info[2].As<Napi::Number>().Uint32Value();
  if (count > 65536) return OutcomeToValue(env, Outcome::Fail(EINVAL, "scanBatchReplies"));
  BatchAnswer answer;
  answer.result.assign(count, 0);
  ScanReplies(buf.Data(), buf.Length(), base, count, &answer);
  if (answer.malformed) return env.Null();
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, Napi::Number::New(env, answer.result[i]));
  return out;
}

}  // namespace

void InitNfnetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("NfnlSocket", NfnlSocket::Define(env));
  exports.Set("scanBatchReplies", Napi::Function::New(env, JsScanBatchReplies, "scanBatchReplies"));
}

}  // namespace podnet
