// CPU check of the synchronisation protocol of the warp-specialised Hopper kernel (HopperTmaKernel
// in flash_hopper.cu; suite cuda-host, no GPU). A discrete-event simulation: each actor is a script
// of the kernel's operations in the kernel's order, indexed by the real TmaRing helpers:
//   the producer thread: arrive.expect_tx, TMA copies, refill waits on the "empty" barriers;
//   the TMA engine: every issued box lands at some later time, in any order, completing its bytes;
//   two consumer warpgroups: "full" waits, named-barrier turns, wgmma groups (landing in any
//   order, observed only through wait_group) and the per-warp releases;
// over mbarriers and named barriers modelled on the PTX ISA. A random scheduler runs one enabled
// event at a time. Every schedule must finish, every wgmma must read the tile it means, no copy may
// land in a slot before both consumers released the tile in it, and every barrier must end idle.
// Broken variants of the protocol (Mutant) show that these checks catch what they are meant to.
// Named barriers are modelled per warpgroup (128 threads at a time): each sync blocks all four
// warps of a warpgroup, so no warp can run a turn ahead of the others.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/attention/hopper_layout.h"

namespace ds::cuda::flash::hopper {
namespace {

// PTX ISA mbarrier: a phase completes once its pending arrivals reach zero and its transaction
// count is zero; try_wait.parity(P) succeeds once the phase of parity P has completed, i.e. while
// the current phase's parity is not P.
struct Mbarrier {
  int count = 1, pending = 1, tx = 0, phases = 0;
  // Arrivals and transaction bytes (expect_tx adds them before its arrival, complete_tx subtracts);
  // false on more arrivals than the phase expects (undefined behaviour).
  bool Update(int arrivals, int bytes) {
    const bool ok = (pending -= arrivals) >= 0;
    if ((tx += bytes) == 0 && pending <= 0) ++phases, pending = count;
    return ok;
  }
  bool TryWait(uint32_t parity) const { return (static_cast<uint32_t>(phases) & 1u) != parity; }
};

// bar.sync / bar.arrive with 256 threads: a generation completes when two warpgroups arrived.
struct NamedBarrier {
  int arrived = 0, generation = 0;
  int Arrive() {  // the generation the arrival belongs to
    const int g = generation;
    if ((arrived += 128) == 256) arrived = 0, ++generation;
    return g;
  }
};

enum class Op { kExpectTx, kCopy, kWait, kTurnArrive, kTakeTurn, kPassTurn, kIssue, kWaitGemm, kRelease };
enum Buf { kQ, kK, kVt };
struct Step {
  Op op;
  int bar = 0;
  uint32_t parity = 0;
  int buf = 0, tile = 0, atom = 0, bytes = 0, keep = 0;
};
// An actor's operations, named after the kernel's calls they stand for.
struct Script : std::vector<Step> {
  void MbarWait(int bar, uint32_t parity) { push_back({.op = Op::kWait, .bar = bar, .parity = parity}); }
  void MbarArriveExpectTx(int bar, int bytes) { push_back({.op = Op::kExpectTx, .bar = bar, .bytes = bytes}); }
  void TmaLoads(int bar, Buf buf, int tile, int boxes, int box_bytes) {  // a tile: one box per swizzle atom
    for (int a = 0; a < boxes; ++a)
      push_back({.op = Op::kCopy, .bar = bar, .buf = buf, .tile = tile, .atom = a, .bytes = box_bytes});
  }
  void Do(Op op) { push_back({.op = op}); }  // kTurnArrive, kTakeTurn, kPassTurn
  void Issue(Buf buf, int tile) { push_back({.op = Op::kIssue, .buf = buf, .tile = tile}); }
  void WgmmaWait(int keep) { push_back({.op = Op::kWaitGemm, .keep = keep}); }
  void Release(int bar, Buf buf, int tile) { push_back({.op = Op::kRelease, .bar = bar, .buf = buf, .tile = tile}); }
};
// Broken protocols the simulation must reject.
enum class Mutant { kNone, kSkipEmptyKWait, kStaleFullKParity, kEarlyVtRelease, kLastHandOver };

template <class T>
class Sim {
  using Ring = TmaRing<T>;
  static constexpr int kS = T::kStages, kBoxesMax = 4;

  // The boxes of one tile, from the tensors Launch (flash_hopper.cu) encodes rather than from the
  // Traits sizes, so that each "full" barrier's expected bytes (kQBytes, kKBytes, kVtBytes) are held
  // to the boxes that complete them: a mismatch leaves a phase open or closes it early. The kernel
  // issues one box per box[0] = 64 columns of a tile (kDimAtoms, kVtAtoms in HopperTmaKernel). A
  // box's size depends only on the tile, so any extents and strides do.
  struct Boxes {
    int count, bytes;
  };
  static Boxes TileBoxes(const TmaTensor& t, int columns) {
    return {columns / static_cast<int>(t.box[0]), static_cast<int>(t.box[0] * t.box[1] * t.box[2] * 2)};
  }
  static TmaTensor Tokens(int rows) { return TokenTensor(rows, 1, T::kHeadDim, T::kHeadDim, T::kHeadDim, rows); }
  const Boxes q_boxes_ = TileBoxes(Tokens(T::kBlockM), T::kHeadDim);
  const Boxes k_boxes_ = TileBoxes(Tokens(T::kBlockN), T::kHeadDim);
  // A V slot's: V as stored, boxed as K (kVMnMajor), or Vᵀ's 64-key boxes of hd rows.
  const Boxes vt_boxes_ = T::kVMnMajor ? TileBoxes(Tokens(T::kBlockN), T::kHeadDim)
                                       : TileBoxes(VtTensor(VtRow(T::kBlockN), 1, T::kHeadDim), T::kVtCols);

 public:
  Sim(int n_tiles, Mutant mutant) : n_(n_tiles), mutant_(mutant), mbar_(1 + 4 * kS) {
    for (int s = 0; s < kS; ++s) {  // the kernel's MbarInit counts
      mbar_[static_cast<size_t>(Ring::EmptyK(s))] = {Ring::kConsumerWarps, Ring::kConsumerWarps};
      mbar_[static_cast<size_t>(Ring::EmptyVt(s))] = {Ring::kConsumerWarps, Ring::kConsumerWarps};
    }
    for (const Boxes& b : {q_boxes_, k_boxes_, vt_boxes_})
      if (b.count > kBoxesMax) Fail("a tile of ", b.count, " boxes: raise kBoxesMax");
    for (auto& d : data_) d.assign(kS * kBoxesMax, -1);
    std::fill_n(&released_[0][0][0], 3 * kS * 2, -1);
    // The producer (tid 0): Q, then K and Vᵀ tiles in ProducerCopy's order, each refill after its
    // slot's release.
    Script& p = actors_[0].script;
    p.MbarArriveExpectTx(Ring::kQFull, T::kQBytes);
    p.TmaLoads(Ring::kQFull, kQ, 0, q_boxes_.count, q_boxes_.bytes);
    for (int i = 0; i < 2 * n_; ++i) {
      const typename Ring::Copy copy = Ring::ProducerCopy(i, n_);
      const int kt = copy.tile, slot = Ring::Slot(kt);
      if (!copy.vt) {
        if (Ring::RefillWaits(kt) && mutant_ != Mutant::kSkipEmptyKWait)
          p.MbarWait(Ring::EmptyK(slot), Ring::EmptyParity(kt));
        p.MbarArriveExpectTx(Ring::FullK(slot), T::kKBytes);
        p.TmaLoads(Ring::FullK(slot), kK, kt, k_boxes_.count, k_boxes_.bytes);
      } else {
        if (Ring::RefillWaits(kt)) p.MbarWait(Ring::EmptyVt(slot), Ring::EmptyParity(kt));
        p.MbarArriveExpectTx(Ring::FullVt(slot), T::kVtBytes);
        p.TmaLoads(Ring::FullVt(slot), kVt, kt, vt_boxes_.count, vt_boxes_.bytes);
      }
    }
    // The consumers: S(0); then S(kt) with P·V(kt − 1); then the last P·V.
    const uint32_t stale = mutant_ == Mutant::kStaleFullKParity ? 1u : 0u;
    for (int wg = 0; wg < 2; ++wg) {
      Script& c = actors_[1 + wg].script;
      actors_[1 + wg].issues_left = n_ + 1;
      if (wg == 1) c.Do(Op::kTurnArrive);
      c.MbarWait(Ring::kQFull, 0);
      c.MbarWait(Ring::FullK(0), 0);
      c.Do(Op::kTakeTurn);
      c.Issue(kK, 0);
      c.Do(Op::kPassTurn);
      c.WgmmaWait(0);
      c.Release(Ring::EmptyK(0), kK, 0);
      for (int kt = 1; kt < n_; ++kt) {
        c.MbarWait(Ring::FullK(Ring::Slot(kt)), Ring::FullParity(kt) ^ stale);
        c.MbarWait(Ring::FullVt(Ring::Slot(kt - 1)), Ring::FullParity(kt - 1));
        c.Do(Op::kTakeTurn);
        c.Issue(kK, kt);
        c.Issue(kVt, kt - 1);
        c.Do(Op::kPassTurn);
        c.WgmmaWait(1);
        c.Release(Ring::EmptyK(Ring::Slot(kt)), kK, kt);
        if (mutant_ != Mutant::kEarlyVtRelease) c.WgmmaWait(0);
        c.Release(Ring::EmptyVt(Ring::Slot(kt - 1)), kVt, kt - 1);
      }
      c.MbarWait(Ring::FullVt(Ring::Slot(n_ - 1)), Ring::FullParity(n_ - 1));
      c.Do(Op::kTakeTurn);
      c.Issue(kVt, n_ - 1);
      c.Do(Op::kPassTurn);
      c.WgmmaWait(0);
    }
  }

  // The first violation of the protocol under the schedule of `seed`; empty if none.
  std::string Run(uint32_t seed) {
    std::mt19937 rng(seed);
    // Per-schedule speeds of the producer, each consumer, the TMA and the tensor cores, so that
    // some schedules starve one of them.
    int speed[5];
    for (int& s : speed) s = 1 + static_cast<int>(rng() % 8);
    struct Event {
      int kind, index, weight;  // kind 0-2: an actor's next step; 3: a copy lands; 4, 5: a gemm lands
    };
    std::vector<Event> events;
    while (error_.empty()) {
      events.clear();
      int total = 0;
      auto add = [&](int kind, int index, int weight) { events.push_back({kind, index, weight}), total += weight; };
      for (int a = 0; a < 3; ++a)
        if (Enabled(a)) add(a, 0, speed[a]);
      for (size_t i = 0; i < copies_.size(); ++i) add(3, static_cast<int>(i), speed[3]);
      for (int wg = 0; wg < 2; ++wg)
        for (size_t g = 0; g < actors_[1 + wg].gemms.size(); ++g)
          if (!actors_[1 + wg].gemms[g].landed) add(4 + wg, static_cast<int>(g), speed[4]);
      if (events.empty()) break;
      int r = static_cast<int>(rng() % static_cast<uint32_t>(total));
      size_t e = 0;
      while (r >= events[e].weight) r -= events[e++].weight;
      if (events[e].kind < 3) {
        Execute(events[e].kind);
      } else if (events[e].kind == 3) {  // the box lands: its data, then its bytes on the barrier
        const Step c = copies_[static_cast<size_t>(events[e].index)];
        copies_.erase(copies_.begin() + events[e].index);
        CheckRefill(c, "lands");
        data_[c.buf][static_cast<size_t>(SlotOf(c.buf, c.tile) * kBoxesMax + c.atom)] = c.tile;
        Bar(c.bar).Update(0, -c.bytes);
      } else {
        actors_[events[e].kind - 3].gemms[static_cast<size_t>(events[e].index)].landed = true;
      }
    }
    if (!error_.empty()) return error_;
    for (int a = 0; a < 3; ++a)  // (1) no deadlock
      if (actors_[a].pc != actors_[a].script.size()) Fail("deadlock: actor ", a, " stuck at step ", actors_[a].pc);
    // (4) every barrier idle, having completed one phase per use.
    auto idle = [&](int bar, int phases) {
      const Mbarrier& m = Bar(bar);
      if (m.pending != m.count || m.tx != 0 || m.phases != phases)
        Fail("mbarrier ", bar, " ends with ", m.phases, " phases, ", m.pending, " arrivals and ", m.tx, " bytes due");
    };
    idle(Ring::kQFull, 1);
    for (int s = 0; s < kS; ++s) {
      const int uses = (n_ - s + kS - 1) / kS;  // tiles s, s + kS, … below n
      idle(Ring::FullK(s), uses), idle(Ring::EmptyK(s), uses), idle(Ring::FullVt(s), uses);
      idle(Ring::EmptyVt(s), uses - (Ring::Slot(n_ - 1) == s ? 1 : 0));  // the last P·V keeps its slot
    }
    for (int b = 1; b <= 2; ++b)
      if (turn_[b].arrived != 0 || turn_[b].generation != n_ + 1) Fail("turn barrier ", b, " unbalanced");
    return error_;
  }

 private:
  struct Gemm {  // one wgmma commit group and the slot it reads (besides Q)
    int buf, slot, tile;
    bool landed;
  };
  struct Actor {
    Script script;
    size_t pc = 0;
    int wait_gen = -1;  // a take_turn's generation once it has arrived
    int issues_left = 0;
    std::vector<Gemm> gemms;  // in issue order
  };

  Mbarrier& Bar(int index) { return mbar_[static_cast<size_t>(index)]; }
  static int SlotOf(int buf, int tile) { return buf == kQ ? 0 : Ring::Slot(tile); }
  template <class... A>
  void Fail(const A&... what) {
    std::ostringstream s;
    (s << ... << what);
    if (error_.empty()) error_ = s.str();
  }
  // (3): a copy of tile j into a slot, as it is issued and as it lands: no wgmma in flight reads the
  // slot's old tile, and both consumers have released tile j − kStages there.
  void CheckRefill(const Step& c, const char* when) {
    if (c.buf == kQ) return;
    const int slot = SlotOf(c.buf, c.tile), prev = c.tile - kS;
    for (int wg = 0; wg < 2; ++wg) {
      for (const Gemm& g : actors_[1 + wg].gemms)
        if (!g.landed && g.buf == c.buf && g.slot == slot && g.tile != c.tile)
          Fail("copy of tile ", c.tile, " (buffer ", c.buf, ") ", when, " under consumer ", wg, "'s wgmma of tile ",
               g.tile);
      if (prev >= 0 && released_[c.buf][slot][wg] != prev)
        Fail("copy of tile ", c.tile, " (buffer ", c.buf, ") ", when, " before consumer ", wg, " released tile ", prev);
    }
  }
  // (2): a wgmma reads the tile it means, every box of it landed.
  void CheckData(int buf, int tile, int boxes) {
    for (int a = 0; a < boxes; ++a)
      if (data_[buf][static_cast<size_t>(SlotOf(buf, tile) * kBoxesMax + a)] != tile)
        Fail("wgmma reads buffer ", buf, " before tile ", tile, " landed");
  }

  bool Enabled(int a) const {
    const Actor& x = actors_[a];
    if (x.pc == x.script.size()) return false;
    const Step& s = x.script[x.pc];
    switch (s.op) {
      case Op::kWait:
        return mbar_[static_cast<size_t>(s.bar)].TryWait(s.parity);
      case Op::kTakeTurn:  // actor a = consumer a − 1, whose turn barrier is a
        return x.wait_gen < 0 || turn_[a].generation > x.wait_gen;
      case Op::kWaitGemm:  // wait_group(keep): all but the newest `keep` groups landed
        for (size_t g = 0; g + static_cast<size_t>(s.keep) < x.gemms.size(); ++g)
          if (!x.gemms[g].landed) return false;
        return true;
      default:
        return true;
    }
  }

  void Execute(int a) {
    Actor& x = actors_[a];
    const Step& s = x.script[x.pc];
    const int wg = a - 1, other = 2 - wg;
    switch (s.op) {
      case Op::kExpectTx:
        if (!Bar(s.bar).Update(1, s.bytes)) Fail("over-arrival on full barrier ", s.bar);
        break;
      case Op::kCopy:
        CheckRefill(s, "is issued");
        copies_.push_back(s);
        break;
      case Op::kTurnArrive:
        turn_[other].Arrive();
        break;
      case Op::kTakeTurn:
        if (x.wait_gen < 0) {
          x.wait_gen = turn_[a].Arrive();
          if (turn_[a].generation == x.wait_gen) return;  // blocks until the other's arrive
        }
        x.wait_gen = -1;
        break;
      case Op::kPassTurn:
        if (--x.issues_left > 0 || wg == 0 || mutant_ == Mutant::kLastHandOver) turn_[other].Arrive();
        break;
      case Op::kIssue:
        if (s.buf == kK) CheckData(kQ, 0, q_boxes_.count);
        CheckData(s.buf, s.tile, s.buf == kK ? k_boxes_.count : vt_boxes_.count);
        x.gemms.push_back({s.buf, SlotOf(s.buf, s.tile), s.tile, false});
        break;
      case Op::kRelease:  // lane 0 of each of the warpgroup's warps
        if (!Bar(s.bar).Update(Ring::kConsumerWarps / T::kWarpGroups, 0)) Fail("over-arrival on empty barrier ", s.bar);
        released_[s.buf][SlotOf(s.buf, s.tile)][wg] = s.tile;
        break;
      default:  // kWait, kWaitGemm: Enabled said they pass
        break;
    }
    ++x.pc;
  }

  int n_;
  Mutant mutant_;
  std::vector<Mbarrier> mbar_;
  NamedBarrier turn_[3];      // 1: consumer 0's turn, 2: consumer 1's
  std::vector<int> data_[3];  // per buffer, [slot][box]: the tile that landed there
  int released_[3][kS][2];    // per buffer, slot and consumer: the tile last released
  Actor actors_[3];           // the producer, consumers 0 and 1
  std::vector<Step> copies_;  // issued, not landed
  std::string error_;
};

template <class F>
void ForEveryTmaConfig(F&& f) {
  ForEachConfig(Candidates<128>::List{}, [&]<class T>(int) {
    if constexpr (T::kProducer) {
      SCOPED_TRACE(HopperConfigName<T>());
      f.template operator()<T>();
    }
  });
}

constexpr int kTileCounts[] = {1, 2, 3, 4, 7, 9};
constexpr uint32_t kSeeds = 300;

TEST(TmaRing, EveryScheduleFinishesWithoutStaleReadsOrOverwrites) {
  int configs = 0;
  ForEveryTmaConfig([&]<class T>() {
    ++configs;
    for (int j = 0; j < 4 * T::kStages; ++j) {  // the slot a copy writes is the slot its barriers track
      EXPECT_EQ(KSlot<T>(j), KSlot<T>(0) + static_cast<uint32_t>(TmaRing<T>::Slot(j) * T::kKBytes));
      EXPECT_EQ(VtSlot<T>(j), VtSlot<T>(0) + static_cast<uint32_t>(TmaRing<T>::Slot(j) * T::kVtBytes));
    }
    for (int n : kTileCounts)
      for (uint32_t seed = 0; seed < kSeeds; ++seed)
        ASSERT_EQ(Sim<T>(n, Mutant::kNone).Run(seed), "") << "n_tiles " << n << ", seed " << seed;
  });
  EXPECT_EQ(configs, 7);
}

// The producer's order: every K and Vᵀ tile exactly once, each K(j) before Vᵀ(j); in order the
// pairs are (K(j), Vᵀ(j)), ahead (K(j + 1), Vᵀ(j)), what consumer step j + 1 reads.
TEST(TmaRing, ProducerCopiesEveryTileOnceInItsOrder) {
  int ahead = 0;
  ForEveryTmaConfig([&]<class T>() {
    using Ring = TmaRing<T>;
    ahead += T::kKAhead ? 1 : 0;
    for (int n = 1; n <= 9; ++n) {
      std::vector<int> k_at(static_cast<size_t>(n), -1), vt_at(static_cast<size_t>(n), -1);
      for (int i = 0; i < 2 * n; ++i) {
        const typename Ring::Copy c = Ring::ProducerCopy(i, n);
        ASSERT_TRUE(c.tile >= 0 && c.tile < n) << "copy " << i << " of " << n;
        int& at = (c.vt ? vt_at : k_at)[static_cast<size_t>(c.tile)];
        ASSERT_EQ(at, -1) << (c.vt ? "Vt(" : "K(") << c.tile << ") copied twice, n " << n;
        at = i;
      }
      for (int j = 0; j < n; ++j) {
        const size_t u = static_cast<size_t>(j);
        EXPECT_LT(k_at[u], vt_at[u]) << "tile " << j << " of " << n;
        if (!T::kKAhead) {
          EXPECT_EQ(vt_at[u], k_at[u] + 1) << "Vt(" << j << ") right after K(" << j << ")";
        } else if (j + 1 < n) {
          EXPECT_EQ(vt_at[u], k_at[u + 1] + 1) << "K(" << j + 1 << ") right before Vt(" << j << ")";
        }
      }
    }
  });
  EXPECT_EQ(ahead, 2);
}

// The checks bite: a producer that refills K without waiting for its release, consumers that wait
// for the wrong phase of "full" or release Vᵀ before their P·V landed, and a consumer 1 that hands
// over its last turn are all caught.
TEST(TmaRing, BrokenProtocolsAreCaught) {
  ForEveryTmaConfig([&]<class T>() {
    for (Mutant m :
         {Mutant::kSkipEmptyKWait, Mutant::kStaleFullKParity, Mutant::kEarlyVtRelease, Mutant::kLastHandOver}) {
      int caught = 0;
      for (uint32_t seed = 0; seed < kSeeds; ++seed) caught += Sim<T>(9, m).Run(seed).empty() ? 0 : 1;
      EXPECT_GT(caught, 0) << "mutant " << static_cast<int>(m);
    }
  });
}

}  // namespace
}  // namespace ds::cuda::flash::hopper
