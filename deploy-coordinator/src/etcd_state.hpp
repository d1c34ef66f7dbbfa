#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "deploy_coordinator/state.hpp"
#include "etcd_client.hpp"

namespace hoist::deploy_coordinator {

/// The coordinator's state in etcd, every record a JSON value under the prefix:
///   <prefix>nodes/<id>, deployments/<id>, deployment-nodes/<deployment>/<node>,
///   holds/<source>, monitors/<name>, events/<deployment or _>/<unique>,
///   meta/deployment-number, meta/holds-seen, election/<lease hex>, replicas/<id>.
/// Each value carries "schema": "hoist-coordinator/1"; a value that does not parse, or names
/// another schema, is refused (Corrupt) naming its key.
///
/// The term is the leader's epoch: the create_revision of its election key. commit() with a
/// term is one txn comparing that key's create_revision and lease, so a deposed leader's write
/// is refused by etcd itself. commit() with term 0 is a write of any replica and may hold
/// only holds and audit events (a halt accepted by a follower).
///
/// A step larger than `max_txn_ops` operations is still atomic: its rows are written first,
/// packed, under <prefix>staged/<id>/ (no reader looks there), then one fenced txn holds the
/// small part (holds, the deployment row) and the marker <prefix>applying/<id>; only then are
/// the rows put in place and the staged keys deleted. A reader lays a committed step's rows
/// over what it read until they are in place; a new leader finishes such a step before it
/// loads and deletes parts that never got their marker. The per-node rows of a deployment
/// that does not exist yet skip the staging (nothing reads a deployment's rows before its
/// row): they are put in place first under the marker <prefix>creating/<id>, which the step's
/// commit deletes; a step that never commits leaves the marker, and its rows are deleted
/// before the next step or by the next leader. Thread-safe.
class EtcdStateStore final : public StateStore {
public:
    static constexpr std::string_view kSchema = "hoist-coordinator/1";

    EtcdStateStore(etcd::Client& client, std::string prefix, std::size_t max_txn_ops = 128);

    /// Called by the election: this replica now leads as `epoch` with its key `key` on
    /// `lease`; epoch 0 (stepping down) refuses every fenced write from here on.
    void setLeadership(std::int64_t epoch, std::string key, std::int64_t lease);

    Result<void> commit(const StepWrite& write, std::int64_t term, bool durable = false) override;
    /// The epoch this replica leads as (0 when it does not lead).
    Result<std::int64_t> term() override;
    /// Ok only for the epoch this replica won; Conflict otherwise.
    Result<void> claim(std::int64_t term) override;

    Result<std::vector<NodeRecord>> nodes() override;
    Result<std::vector<Hold>> holds() override;
    Result<std::vector<Deployment>> deployments(int limit = 100) override;
    Result<std::optional<Deployment>> deployment(std::string_view id) override;
    Result<std::vector<DeploymentNode>> deploymentNodes(std::string_view deployment) override;
    Result<std::vector<Event>> events(std::optional<std::string_view> deployment,
                                      int limit = 100) override;
    Result<std::int64_t> nextDeploymentNumber() override;
    Result<std::vector<MonitorRecord>> monitors() override;
    Result<void> writeMonitor(const std::optional<MonitorRecord>& put, std::string_view remove,
                              const std::vector<Event>& events) override;

    /// Finishes what a leader left staged (etcd_staged.cpp): a step whose marker is committed
    /// is applied, parts without a marker (a leader gone before its step committed) are
    /// deleted. Fenced on this replica's epoch; the new leader calls it before loading.
    Result<void> recover();

    /// A replica that does not lead (after its commitHolds): returns once the replica that
    /// leads now has acknowledged every hold standing (acknowledgeHolds with the newest hold's
    /// revision or a later one), or at once when no replica campaigns (the next leader reads
    /// the holds before it acts). Unhealthy when that has not happened within the confirm
    /// timeout (the hold stays written). Ok at once on the leader (etcd_holds.cpp).
    Result<void> confirmHolds() override;
    /// The leader: every hold written at or before `revision` is in force here (its gate is
    /// raised for it). Puts meta/holds-seen, fenced on this replica's election key.
    Result<void> acknowledgeHolds(std::int64_t revision);
    /// How long confirmHolds waits (a leader's lease must be able to expire and a successor
    /// take over within it).
    void setConfirmTimeout(std::chrono::milliseconds timeout) { confirm_timeout_ = timeout; }

    /// Checks that etcd answers (a read of the prefix); Network naming the endpoints otherwise.
    Result<void> ping();
    /// Decodes one hold value (the holds watch); Corrupt naming the key.
    static Result<Hold> decodeHold(const etcd::KeyValue& kv);
    /// Decoders of the records a watch delivers (StoreFeed); Corrupt naming the key.
    static Result<NodeRecord> decodeNodeValue(const etcd::KeyValue& kv);
    static Result<Deployment> decodeDeploymentValue(const etcd::KeyValue& kv);
    static Result<DeploymentNode> decodeDeploymentNodeValue(const etcd::KeyValue& kv);
    static Result<Event> decodeEventValue(const etcd::KeyValue& kv);

    /// Test seams: the size of one staged part, and a hook run after each staged txn with
    /// "part" or "marker" (a test deposes the leader there).
    void setStagingForTest(std::size_t part_bytes,
                           std::function<void(std::string_view stage)> after) {
        staged_part_bytes_ = part_bytes;
        after_staged_ = std::move(after);
    }

    /// Steps committed staged (too large for one txn) by this replica.
    std::uint64_t stagedSteps() const { return staged_steps_.load(); }

    etcd::Client& client() { return client_; }
    const std::string& prefix() const { return prefix_; }

private:
    Result<std::vector<etcd::KeyValue>> rangePrefix(const std::string& prefix,
                                                    std::int64_t limit = 0,
                                                    bool newest_first = false);
    std::vector<etcd::Op> eventOps(const std::vector<Event>& events);
    /// A read etcd did not answer: Unhealthy (503) naming the store.
    Error unavailable(const Error& e) const;
    /// One txn; Conflict when its fence (not empty) failed.
    Result<void> fencedTxn(const std::vector<etcd::Compare>& fence,
                           const std::vector<etcd::Op>& ops, std::int64_t term);
    /// The fence of this replica's term (empty when `term` is not its epoch).
    std::vector<etcd::Compare> fenceFor(std::int64_t term);
    // etcd_staged.cpp
    Result<void> commitStaged(const std::vector<etcd::Compare>& fence, std::vector<etcd::Op> bulk,
                              std::vector<etcd::Op> control, std::int64_t term);
    /// When `control` puts a deployment that does not exist yet: writes its per-node rows from
    /// `bulk` in place (fenced txns) under the marker creating/<id>, takes them out of `bulk`
    /// and adds the marker's deletion to `control`; true then. False (nothing written) else.
    Result<bool> writeNewRows(const std::vector<etcd::Compare>& fence, std::vector<etcd::Op>& bulk,
                              std::vector<etcd::Op>& control, std::int64_t term);
    Result<void> applyStaged(const std::vector<etcd::Compare>& fence, const std::string& txid,
                             const std::vector<etcd::Op>& ops, std::int64_t term);
    Result<std::vector<etcd::Op>> readStaged(const std::string& txid, std::int64_t revision);
    /// recover() with staging_mutex_ held.
    Result<void> recoverLocked();
    Result<std::vector<etcd::KeyValue>> overlayStaged(const std::string& prefix,
                                                      etcd::RangeResult read);

    etcd::Client& client_;
    std::string prefix_;
    std::size_t max_txn_ops_;
    std::mutex mutex_;
    std::int64_t epoch_ = 0;
    std::string election_key_;
    std::int64_t lease_ = 0;
    /// The highest deployment number written (meta/deployment-number) in this term.
    std::optional<std::int64_t> highest_number_;
    /// A staged step's marker is committed but its rows are not all applied yet, or a new
    /// deployment's rows were written but its step did not commit: recover before the next.
    std::atomic<bool> unapplied_{false};
    /// Held by each fenced commit and by recover().
    std::mutex staging_mutex_;
    std::atomic<std::uint64_t> staged_steps_{0};
    std::size_t staged_part_bytes_ = 384 * 1024;
    std::function<void(std::string_view)> after_staged_;
    std::chrono::milliseconds confirm_timeout_{12000};
};

}  // namespace hoist::deploy_coordinator
