// netpol-check evaluates NetworkPolicies the way a CNI that enforces them would, with
// cyclonus's policy matcher (github.com/mattfenwick/cyclonus/pkg/matcher), so that the
// e2e tests can prove what Herald's policies mean on a cluster whose network (kwok, no
// CNI) only stores them. Nothing is sent anywhere: traffic is described, not made.
//
// Input on stdin (JSON):
//
//	{"policies": [<networking.k8s.io/v1 NetworkPolicy>, ...],
//	 "cases": [{"name": "...", "port": 443, "protocol": "TCP",
//	            "source": <peer>, "destination": <peer>}, ...]}
//
// where a peer is {"ip": "203.0.113.7"} outside the cluster, or
// {"namespace": "...", "namespaceLabels": {...}, "podLabels": {...}, "ip": "10.244.0.7"}
// for a pod. Output on stdout: {"<name>": {"allowed": bool, "ingress": bool,
// "egress": bool}, ...}. Exit 2 on unreadable input.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

type peer struct {
	IP              string            `json:"ip"`
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
}

type trafficCase struct {
	Name        string `json:"name"`
	Port        int    `json:"port"`
	Protocol    string `json:"protocol"`
	Source      peer   `json:"source"`
	Destination peer   `json:"destination"`
}

type input struct {
	Policies []*networkingv1.NetworkPolicy `json:"policies"`
	Cases    []trafficCase                `json:"cases"`
}

type verdict struct {
	Allowed bool `json:"allowed"`
	Ingress bool `json:"ingress"`
	Egress  bool `json:"egress"`
}

func (p peer) traffic() *matcher.TrafficPeer {
	if p.Namespace == "" {
		return &matcher.TrafficPeer{IP: p.IP}
	}
	return &matcher.TrafficPeer{
		IP: p.IP,
		Internal: &matcher.InternalPeer{
			Namespace:       p.Namespace,
			NamespaceLabels: p.NamespaceLabels,
			PodLabels:       p.PodLabels,
		},
	}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-check: cannot read the input:", err)
		os.Exit(2)
	}
	// simplify=false: evaluate the policies as written.
	policy := matcher.BuildNetworkPolicies(false, in.Policies)
	out := map[string]verdict{}
	for _, c := range in.Cases {
		protocol := v1.Protocol(c.Protocol)
		if protocol == "" {
			protocol = v1.ProtocolTCP
		}
		result := policy.IsTrafficAllowed(&matcher.Traffic{
			Source:       c.Source.traffic(),
			Destination:  c.Destination.traffic(),
			ResolvedPort: c.Port,
			Protocol:     protocol,
		})
		out[c.Name] = verdict{
			Allowed: result.IsAllowed(),
			Ingress: result.Ingress.IsAllowed(),
			Egress:  result.Egress.IsAllowed(),
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-check:", err)
		os.Exit(2)
	}
}
