// Command manager runs the asynctask-operator: it tracks AsyncTasks by polling their vendors' task-status APIs.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/asynctask-operator/asynctask-operator/internal/controller"
	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

func main() {
	var (
		metricsAddr    string
		probeAddr      string
		secureMetrics  bool
		leaderElection bool
		leaderElectNS  string
		shardingMode   string
		leases         leaseTimings
		watchNS        string
		operatorOpts   controller.Options
		network        networkFlags
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, "+
		"e.g. :8443 (HTTPS) or :8080 (HTTP); 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health probes bind to.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&leaderElection, "leader-elect", false, "With --sharding=leader: elect a leader, so that only one replica polls at a time.")
	flag.StringVar(&shardingMode, "sharding", "leader", "How replicas share the work: leader (one replica works, "+
		"the others wait for its Lease: see --leader-elect) or ring (every replica holds a Lease of its own and works "+
		"on the tasks a consistent-hash ring over the live replicas gives it).")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease, or of "+
		"the ring's Leases; the pod's own when empty. Needed with --leader-elect or --sharding=ring outside a cluster.")
	leases.bind(flag.CommandLine)
	flag.StringVar(&watchNS, "watch-namespaces", "", "Comma-separated namespaces whose AsyncTasks, TaskBackends and "+
		"Secrets the operator watches (include the namespaces ClusterTaskBackends take Secrets from); all when empty.")
	flag.IntVar(&operatorOpts.Workers, "workers", 16, "How many tasks are polled at once.")
	flag.IntVar(&operatorOpts.WorkersPerBackend, "workers-per-backend", 0, "The most workers one backend may hold "+
		"at once, so that a slow vendor cannot delay the others; a quarter of --workers when 0.")
	flag.IntVar(&operatorOpts.WorkersPerNamespace, "workers-per-namespace", 0, "The most workers the TaskBackends of "+
		"one namespace may hold at once together, so that one tenant cannot starve the others; half of --workers when 0.")
	flag.StringVar(&operatorOpts.Shard, "shard", "", "Track only AsyncTasks labelled "+controller.ShardLabel+"=<shard>; "+
		"without it, only the tasks that carry no such label. Run one Deployment per shard to split many tasks.")
	network.bind(flag.CommandLine)
	flag.BoolVar(&operatorOpts.ForbidNamespacedBackends, "forbid-namespaced-backends", false, "Refuse TaskBackends, "+
		"so that tasks can only use ClusterTaskBackends (which only cluster administrators create).")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setupLog := ctrl.Log.WithName("setup")
	leaveMemoryHeadroom(setupLog)

	metricsOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		// HTTP/2 is off: it is exposed to the HTTP/2 Rapid Reset and Stream Cancellation CVEs.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if secureMetrics {
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgrOptions, err := controller.ManagerOptions(operatorOpts, splitList(watchNS))
	if err != nil {
		setupLog.Error(err, "Invalid flags")
		os.Exit(1)
	}
	mgrOptions.Metrics = metricsOptions
	mgrOptions.HealthProbeBindAddress = probeAddr
	cfg := ctrl.GetConfigOrDie()
	switch shardingMode {
	case "leader":
		mgrOptions.LeaderElection = leaderElection
		mgrOptions.LeaderElectionNamespace = leaderElectNS
		// Each shard elects its own leader.
		mgrOptions.LeaderElectionID = strings.Trim("asynctask-operator-"+operatorOpts.Shard, "-") + ".tasks.asynctask.dev"
		mgrOptions.LeaderElectionReleaseOnCancel = true
		mgrOptions.LeaseDuration, mgrOptions.RenewDeadline, mgrOptions.RetryPeriod = &leases.duration, &leases.renewDeadline, &leases.retryPeriod
	case "ring":
		if leaderElection {
			setupLog.Error(nil, "Invalid flags: --leader-elect elects one working replica; --sharding=ring makes every replica work. Choose one.")
			os.Exit(1)
		}
		if operatorOpts.Ring, err = newRing(cfg, leaderElectNS, operatorOpts.Shard, leases, ctrl.Log.WithName("ring")); err != nil {
			setupLog.Error(err, "Invalid flags")
			os.Exit(1)
		}
	default:
		setupLog.Error(nil, "Invalid flags: --sharding must be leader or ring", "sharding", shardingMode)
		os.Exit(1)
	}
	if operatorOpts.TaskBackendNetwork, operatorOpts.ClusterTaskBackendNetwork, err = network.policies(cfg, mgrOptions.Scheme, setupLog); err != nil {
		setupLog.Error(err, "Invalid flags")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(cfg, mgrOptions)
	if err != nil {
		setupLog.Error(err, "Cannot create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := controller.SetupWithManager(ctx, mgr, operatorOpts); err != nil {
		setupLog.Error(err, "Cannot set up the controllers")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	setupLog.Info("Starting the manager")
	// With a ring, the member's Lease outlives the manager: on SIGTERM the controllers stop polling first, and
	// only then is the Lease released, so that the others never poll a task while this replica still does.
	err = sharding.RunBeside(ctx, operatorOpts.Ring, mgr.Start)
	if err != nil {
		setupLog.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

// leaveMemoryHeadroom lowers a GOMEMLIMIT given in bytes (as the Deployment sets it from the container's memory
// limit) to nine tenths of it, so that what the Go runtime does not count (stacks, fragmentation, the binary)
// fits under the limit and the collector acts before the kernel's OOM killer does.
func leaveMemoryHeadroom(log logr.Logger) {
	value := os.Getenv("GOMEMLIMIT")
	limit, err := strconv.ParseInt(value, 10, 64)
	if err != nil || limit <= 0 {
		return // unset, or given with a unit: taken as it is
	}
	debug.SetMemoryLimit(limit / 10 * 9)
	log.Info("Memory limit set from GOMEMLIMIT, with a tenth kept as headroom", "containerLimitBytes", limit, "goMemoryLimitBytes", limit/10*9)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(value string) []string {
	var out []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
