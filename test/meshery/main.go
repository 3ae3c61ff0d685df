// meshery-check: Meshery Server's side of the `meshery` wire mode, with Meshery's own modules.
//
//	meshery-check listen -url nats://127.0.0.1:4222 [-token T]
//	    Subscribes as Meshery Server does (meshkit broker/nats, queue ""): meshery.meshsync.core,
//	    meshery-server.meshsync.store, meshsync-meta, and the log and exec-session subjects. Each
//	    message is decoded as the server decodes it (meshkit utils.Marshal of the envelope's Object,
//	    then meshkit encoding.Unmarshal into meshsync's model.KubernetesResource) and keyed with
//	    meshsync's model.SetID. One JSON line per message or object on stdout. Commands on stdin,
//	    one per line: store | resync | meta (the requests the server sends, as it sends them),
//	    raw <json> (a payload as is on the request subject), verdict (a summary line), quit.
//
//	meshery-check parse
//	    Go MeshSync's own encoding: each stdin line {"type","cluster_id","object"} through
//	    model.ParseList and json.Marshal of the broker.Message, one line out per line in.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meshery/meshkit/broker"
	meshnats "github.com/meshery/meshkit/broker/nats"
	"github.com/meshery/meshkit/encoding"
	"github.com/meshery/meshkit/utils"
	"github.com/meshery/meshsync/pkg/model"
	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Meshery Server's subjects (server/models/meshsync_events.go).
const (
	coreSubject    = "meshery.meshsync.core"
	storeSubject   = "meshery-server.meshsync.store"
	requestSubject = "meshery.meshsync.request"
	metaSubject    = "meshsync-meta"
)

var out = struct {
	sync.Mutex
	w *bufio.Writer
}{w: bufio.NewWriter(os.Stdout)}

func emit(v any) {
	line, _ := json.Marshal(v)
	out.Lock()
	defer out.Unlock()
	out.w.Write(line)
	out.w.WriteByte('\n')
	out.w.Flush()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: meshery-check listen|parse [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "listen":
		listen(os.Args[2:])
	case "parse":
		parse()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

// Object is one decoded KubernetesResource as the test reads it.
type Object struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	RV         string `json:"resourceVersion"`
	ClusterID  string `json:"cluster_id"`
	// ID is what meshsync's SetID computes (Meshery's gorm hooks call it before every write).
	ID string `json:"id"`
	// Decoded is true when the server's decoding succeeded with no JSON field type error.
	Decoded bool   `json:"decoded"`
	Error   string `json:"error,omitempty"`
	// Unknown names a key the model has no field for (the server ignores it; the test does not).
	Unknown string `json:"unknown,omitempty"`
	// Model is the decoded resource, marshalled again (for a close look in a failing test).
	Model json.RawMessage `json:"model,omitempty"`
}

// decode does what MeshsyncDataHandler.Unmarshal does, then SetID, and checks strictly on the side.
func decode(object any) Object {
	objectJSON, err := utils.Marshal(object)
	if err != nil {
		return Object{Error: "marshal: " + err.Error()}
	}
	var resource model.KubernetesResource
	result := Object{}
	if err := encoding.Unmarshal([]byte(objectJSON), &resource); err != nil {
		result.Error = err.Error()
	}
	// encoding.Unmarshal falls back to YAML; plain encoding/json names any field type error.
	var strict model.KubernetesResource
	if err := json.Unmarshal([]byte(objectJSON), &strict); err != nil && result.Error == "" {
		result.Error = "json: " + err.Error()
	}
	dec := json.NewDecoder(strings.NewReader(objectJSON))
	dec.DisallowUnknownFields()
	var probe model.KubernetesResource
	if err := dec.Decode(&probe); err != nil && strings.Contains(err.Error(), "unknown field") {
		result.Unknown = err.Error()
	}
	if resource.KubernetesResourceMeta == nil {
		if result.Error == "" {
			result.Error = "metadata is null: not an object for Meshery (IsObject false)"
		}
		return result
	}
	model.SetID(&resource)
	meta := resource.KubernetesResourceMeta
	result.Kind, result.APIVersion, result.Namespace, result.Name = resource.Kind, resource.APIVersion, meta.Namespace, meta.Name
	result.UID, result.RV, result.ClusterID, result.ID = meta.UID, meta.ResourceVersion, resource.ClusterID, resource.ID
	result.Decoded = result.Error == ""
	return result
}

type counts struct {
	Messages     int            `json:"messages"`
	Decoded      int            `json:"decoded"`
	Failed       int            `json:"failed"`
	Unknown      int            `json:"unknownFields"`
	ByEventType  map[string]int `json:"byEventType"`
	ByObjectType map[string]int `json:"byObjectType"`
	Errors       []string       `json:"errors"`
}

func newCounts() *counts {
	return &counts{ByEventType: map[string]int{}, ByObjectType: map[string]int{}, Errors: []string{}}
}

func (c *counts) note(o Object) {
	if o.Decoded {
		c.Decoded++
	} else {
		c.Failed++
		if len(c.Errors) < 20 {
			c.Errors = append(c.Errors, o.Error)
		}
	}
	if o.Unknown != "" {
		c.Unknown++
		if len(c.Errors) < 20 {
			c.Errors = append(c.Errors, o.Unknown)
		}
	}
}

type state struct {
	sync.Mutex
	core  *counts
	store *counts
	// StoreBatches counts store messages by their number of objects.
	storeBatches map[int]int
	storeNonArr  int
	// ids: every SetID id seen per uid; view: Meshery's table after each event, by id.
	ids      map[string]map[string]bool
	view     map[string]Object
	storeIDs map[string]bool
	versions []string
	errors   map[string][]string
}

func listen(args []string) {
	flags := flag.NewFlagSet("listen", flag.ExitOnError)
	url := flags.String("url", "nats://127.0.0.1:4222", "broker URL")
	token := flags.String("token", "", "NATS token (as the server reads the operator's secret)")
	flags.Parse(args)

	// As Meshery Server connects (server/models/meshery_controllers.go), with a token when set.
	handler, err := meshnats.New(meshnats.Options{URLS: []string{*url}, ConnectionName: "meshery-server", Token: *token, ReconnectWait: 200 * time.Millisecond, MaxReconnect: -1})
	if err != nil {
		emit(map[string]any{"kind": "fatal", "error": err.Error()})
		os.Exit(1)
	}
	defer handler.CloseConnection()
	raw, err := nats.Connect(*url, nats.Token(*token), nats.Name("meshery-check-raw"))
	if err != nil {
		emit(map[string]any{"kind": "fatal", "error": err.Error()})
		os.Exit(1)
	}
	defer raw.Close()

	st := &state{core: newCounts(), store: newCounts(), storeBatches: map[int]int{}, ids: map[string]map[string]bool{}, view: map[string]Object{}, storeIDs: map[string]bool{}, versions: []string{}, errors: map[string][]string{}}
	subscribe := func(subject string, handle func(*broker.Message)) {
		ch := make(chan *broker.Message, 4096)
		if err := handler.SubscribeWithChannel(subject, "", ch); err != nil {
			emit(map[string]any{"kind": "fatal", "error": err.Error()})
			os.Exit(1)
		}
		go func() {
			for msg := range ch {
				handle(msg)
			}
		}()
	}
	subscribe(coreSubject, func(msg *broker.Message) {
		// The server type-asserts an ERROR event's Object to a Go error: a panic there.
		o := Object{}
		if msg.EventType == broker.ErrorEvent {
			o.Error = "EventType ERROR: Meshery Server would panic"
		} else {
			o = decode(msg.Object)
		}
		st.Lock()
		st.core.Messages++
		st.core.ByEventType[string(msg.EventType)]++
		st.core.ByObjectType[string(msg.ObjectType)]++
		st.core.note(o)
		if o.ID != "" {
			if st.ids[o.UID] == nil {
				st.ids[o.UID] = map[string]bool{}
			}
			st.ids[o.UID][o.ID] = true
			switch msg.EventType {
			case broker.Add, broker.Update:
				st.view[o.ID] = o
			case broker.Delete:
				delete(st.view, o.ID)
			}
		}
		st.Unlock()
		emit(map[string]any{"kind": "event", "eventType": msg.EventType, "objectType": msg.ObjectType, "object": o})
	})
	subscribe(storeSubject, func(msg *broker.Message) {
		items, isArray := msg.Object.([]interface{})
		st.Lock()
		st.store.Messages++
		st.store.ByObjectType[string(msg.ObjectType)]++
		st.store.ByEventType[string(msg.EventType)]++
		if !isArray {
			st.storeNonArr++
		}
		st.storeBatches[len(items)]++
		st.Unlock()
		for _, item := range items {
			o := decode(item)
			st.Lock()
			st.store.note(o)
			if o.ID != "" {
				st.storeIDs[o.ID] = true
				// The server stores store replies as ADDED.
				st.view[o.ID] = o
			}
			st.Unlock()
			emit(map[string]any{"kind": "store", "object": o})
		}
	})
	subscribe(metaSubject, func(msg *broker.Message) {
		version, _ := msg.Object.(string)
		st.Lock()
		st.versions = append(st.versions, version)
		st.Unlock()
		emit(map[string]any{"kind": "meta", "objectType": msg.ObjectType, "version": version})
	})
	for _, subject := range []string{"meshery.meshsync.logs", "active_sessions.exec", "exec.>"} {
		subject := subject
		subscribe(subject, func(msg *broker.Message) {
			text, _ := msg.Object.(string)
			st.Lock()
			st.errors[string(msg.ObjectType)] = append(st.errors[string(msg.ObjectType)], subject+": "+text)
			st.Unlock()
			emit(map[string]any{"kind": "reply", "subject": subject, "objectType": msg.ObjectType, "text": text})
		})
	}
	emit(map[string]any{"kind": "ready"})

	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		command, rest, _ := strings.Cut(strings.TrimSpace(scanner.Text()), " ")
		var err error
		switch command {
		case "store":
			// storeIds holds what answers this request.
			st.Lock()
			st.storeIDs = map[string]bool{}
			st.Unlock()
			// requestMeshsyncStore, as the server sends it once its store subscription is up.
			err = handler.Publish(requestSubject, &broker.Message{Request: &broker.RequestObject{
				Entity: "informer-store", Payload: struct{ Reply string }{Reply: storeSubject},
			}})
		case "resync":
			err = handler.Publish(requestSubject, &broker.Message{Request: &broker.RequestObject{Entity: broker.ReSyncDiscoveryEntity}})
		case "meta":
			err = handler.Publish(requestSubject, &broker.Message{Request: &broker.RequestObject{Entity: "meshsync-meta"}})
		case "raw":
			err = raw.Publish(requestSubject, []byte(rest))
		case "verdict":
			st.Lock()
			emit(verdict(st))
			st.Unlock()
			continue
		case "quit":
			return
		default:
			err = fmt.Errorf("unknown command %q", command)
		}
		if err == nil {
			err = raw.Flush()
		}
		result := map[string]any{"kind": "sent", "command": command}
		if err != nil {
			result["error"] = err.Error()
		}
		emit(result)
	}
}

func verdict(st *state) map[string]any {
	unstable := []string{}
	for uid, ids := range st.ids {
		if len(ids) > 1 {
			unstable = append(unstable, uid)
		}
	}
	view := make([]Object, 0, len(st.view))
	for _, o := range st.view {
		view = append(view, o)
	}
	sort.Slice(view, func(i, j int) bool { return view[i].ID < view[j].ID })
	storeIDs := make([]string, 0, len(st.storeIDs))
	for id := range st.storeIDs {
		storeIDs = append(storeIDs, id)
	}
	sort.Strings(storeIDs)
	return map[string]any{
		"kind":          "verdict",
		"core":          st.core,
		"objectsSeen":   len(st.ids),
		"unstableIds":   unstable,
		"view":          view,
		"store":         st.store,
		"storeBatches":  st.storeBatches,
		"storeNonArray": st.storeNonArr,
		"storeIds":      storeIDs,
		"metaVersions":  st.versions,
		"replies":       st.errors,
	}
}

// parse runs Go MeshSync's ParseList on each object, and marshals the message as meshkit's
// Publish does.
func parse() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 16<<20), 16<<20)
	for scanner.Scan() {
		var in struct {
			Type      string          `json:"type"`
			ClusterID string          `json:"cluster_id"`
			Object    json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(scanner.Bytes(), &in); err != nil {
			emit(map[string]any{"error": err.Error()})
			continue
		}
		var object unstructured.Unstructured
		if err := object.UnmarshalJSON(in.Object); err != nil {
			emit(map[string]any{"error": err.Error()})
			continue
		}
		resource := model.ParseList(object, broker.EventType(in.Type), in.ClusterID)
		data, err := json.Marshal(&broker.Message{ObjectType: broker.MeshSync, EventType: broker.EventType(in.Type), Object: resource})
		if err != nil {
			emit(map[string]any{"error": err.Error()})
			continue
		}
		out.Lock()
		out.w.Write(bytes.TrimSpace(data))
		out.w.WriteByte('\n')
		out.w.Flush()
		out.Unlock()
	}
}
