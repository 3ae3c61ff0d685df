{{- /*
The objects are those of `meshsync install` (cli/install/manifests.ts, rbac.ts) for the same
settings; test/e2e/helm.test.ts renders both and compares them object by object.
*/ -}}

{{- /* The recommended labels, as cli/install/objects.ts sets them, and Helm's own. */ -}}
{{- define "meshsync.labels" -}}
app.kubernetes.io/name: meshsync
app.kubernetes.io/part-of: meshery
{{- if .instance }}
app.kubernetes.io/instance: {{ .root.Values.name }}
{{- end }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "meshsync.selector" -}}
app.kubernetes.io/name: meshsync
app.kubernetes.io/instance: {{ .Values.name }}
{{- end -}}

{{- /* MeshSync's watch-list ConfigMap, the name its chart gives it and the MeshSync resource plugin reads by default. */ -}}
{{- define "meshsync.watchConfigMap" -}}meshery-meshsync-config{{- end -}}

{{- define "meshsync.brokerUrl" -}}
{{- if .Values.broker.custom.url -}}
{{ .Values.broker.custom.url }}
{{- else -}}
nats://{{ .Values.broker.native.name }}.{{ .Values.broker.native.namespace | default .Release.Namespace }}.svc:4222
{{- end -}}
{{- end -}}

{{- /* "true" when a server of the broker URL carries credentials (user:pass@): they go into a Secret. */ -}}
{{- define "meshsync.brokerHasCredentials" -}}
{{- $found := false -}}
{{- range splitList "," (include "meshsync.brokerUrl" .) -}}
{{- if regexMatch "(?i)^[a-z]+://[^/@]*@" (trim .) }}{{ $found = true }}{{ end -}}
{{- end -}}
{{- $found -}}
{{- end -}}

{{- /* The Secret BROKER_URL comes from: the user's (existingSecret), or the chart's for a URL with credentials; empty: none. */ -}}
{{- define "meshsync.brokerSecret" -}}
{{- if .Values.broker.existingSecret.name -}}
{{- if .Values.broker.custom.url }}{{ fail "broker: set existingSecret or custom.url, not both (existingSecret holds the URL)" }}{{ end -}}
{{ .Values.broker.existingSecret.name }}
{{- else if eq (include "meshsync.brokerHasCredentials" .) "true" -}}
{{ .Values.name }}-broker
{{- end -}}
{{- end -}}

{{- /* The first server's port, 4222 unless the URL says otherwise (the NetworkPolicy lets it out); the chart cannot read an existing Secret's URL. */ -}}
{{- define "meshsync.brokerPort" -}}
{{- if .Values.broker.existingSecret.name -}}
{{ .Values.broker.existingSecret.port }}
{{- else -}}
{{- $first := trim (first (splitList "," (include "meshsync.brokerUrl" .))) -}}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" (urlParse $first).host) -}}
{{- $port | default "4222" -}}
{{- end -}}
{{- end -}}

{{- /*
meshsync's config file as a dict: .Values.config, with the in-cluster default plugins written out
when metadataOnly asks the kubernetes plugin for metadata only (a config listing no plugins runs
those defaults).
*/ -}}
{{- define "meshsync.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if .Values.metadataOnly -}}
{{- if hasKey $config "plugins" }}{{ fail "metadataOnly: with config.plugins, set metadataOnly: true in the options of its meshsync:kubernetes entry instead" }}{{ end -}}
{{- $plugins := list -}}
{{- range (include "meshsync.rbacTable" . | fromJson).inClusterPlugins -}}
{{- $plugins = append $plugins (ternary (list . (dict "metadataOnly" true)) . (eq . "meshsync:kubernetes")) -}}
{{- end -}}
{{- $_ := set $config "plugins" $plugins -}}
{{- end -}}
{{- with include "meshsync.secretPaths" (dict "value" $config "path" "config" "keys" (include "meshsync.secretKeys" . | fromJsonArray)) | fromJsonArray -}}
{{- fail (printf "config holds credentials (%s): the chart ships its config in a ConfigMap. Give the broker URL with its credentials in broker.existingSecret (a Secret of yours) or broker.custom.url (the chart puts it in a Secret); meshsync install --config ships such a config in a Secret" (join ", " .)) -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{- /*
Where (dict "value" v "path" p "keys" <patterns>) holds credentials, as config/mask.ts secretPaths
finds them: a non-empty value under a key naming one, or a URL with userinfo.
*/ -}}
{{- define "meshsync.secretPaths" -}}
{{- $found := list -}}
{{- if kindIs "string" .value -}}
{{- range regexSplit "[\\s,]+" .value -1 -}}
{{- if or (regexMatch "://.*@" .) (regexMatch "^[^/]*@[^@]*$" .) }}{{ $found = append $found $.path }}{{ end -}}
{{- end -}}
{{- else if kindIs "slice" .value -}}
{{- range $i, $v := .value }}{{ $found = concat $found (include "meshsync.secretPaths" (dict "value" $v "path" (printf "%s[%d]" $.path $i) "keys" $.keys) | fromJsonArray) }}{{ end -}}
{{- else if kindIs "map" .value -}}
{{- range $k, $v := .value -}}
{{- $at := printf "%s.%s" $.path $k -}}
{{- $named := false -}}
{{- range $.keys }}{{ if regexMatch . $k }}{{ $named = true }}{{ end }}{{ end -}}
{{- if and $named (not (kindIs "invalid" $v)) (ne (toString $v) "") -}}
{{- $found = append $found $at -}}
{{- else -}}
{{- $found = concat $found (include "meshsync.secretPaths" (dict "value" $v "path" $at "keys" $.keys) | fromJsonArray) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $found) -}}
{{- end -}}

{{- /* The config file's text, as `meshsync install` ships it (YAML, ending in a newline). */ -}}
{{- define "meshsync.configText" -}}
{{- printf "%s\n" (include "meshsync.config" . | fromJson | toYaml) -}}
{{- end -}}

{{- /*
One watch-list (dict "value" <string or list> "key" <where, for errors>) as JSON: a list of
{"resource": id, "all": bool}, "all" when the rule covers every event. A string is JSON, or JSON
holding the JSON text (Meshery's values quote it so); entries are {"Resource","Events"} with keys
matched case-insensitively, as Go's decoder does, or plain ids. A list (a watch-list plugin's
options) holds the same entries.
*/ -}}
{{- define "meshsync.rules" -}}
{{- $key := .key -}}
{{- $list := .value -}}
{{- if kindIs "string" .value -}}
{{- $value := trim .value -}}
{{- $list = list -}}
{{- if $value -}}
{{- $decoded := printf "{\"v\": %s}" $value | fromJson -}}
{{- if hasKey $decoded "Error" }}{{ fail (printf "%s: not valid JSON (%s); expected e.g. [{\"Resource\":\"pods.v1.\",\"Events\":[\"ADDED\"]}] or [\"pods.v1.\"]" $key $decoded.Error) }}{{ end -}}
{{- $list = $decoded.v -}}
{{- if and (kindIs "string" $list) (trim $list) -}}
{{- $again := printf "{\"v\": %s}" $list | fromJson -}}
{{- if hasKey $again "Error" }}{{ fail (printf "%s: the JSON string it holds is not valid JSON (%s)" $key $again.Error) }}{{ end -}}
{{- $list = $again.v -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $list (not (kindIs "slice" $list)) }}{{ fail (printf "%s: expected a JSON list, got %s" $key (toJson $list)) }}{{ end -}}
{{- $rules := list -}}
{{- range $i, $entry := $list | default list -}}
{{- $resource := "" -}}
{{- $events := "unset" -}}
{{- if kindIs "string" $entry -}}
{{- $resource = $entry -}}
{{- else if kindIs "map" $entry -}}
{{- range $k, $v := $entry -}}
{{- if eq (lower $k) "resource" }}{{ $resource = $v }}{{ end -}}
{{- if eq (lower $k) "events" }}{{ $events = $v }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if not (and (kindIs "string" $resource) (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?\\.([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$" $resource)) -}}
{{- fail (printf "%s[%d]: not a resource id: %s (expected <plural>.<version>.<group>, e.g. pods.v1. (core group: trailing dot) or deployments.v1.apps; no patterns)" $key $i (toJson $entry)) -}}
{{- end -}}
{{- if and (not (kindIs "string" $events)) (or (not (kindIs "slice" $events)) (eq (len $events) 0)) -}}
{{- fail (printf "%s[%d]: Events must list at least one event, or be left out for all three" $key $i) -}}
{{- end -}}
{{- $rules = append $rules (dict "resource" $resource "all" (or (kindIs "string" $events) (eq (len $events) 3))) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}
