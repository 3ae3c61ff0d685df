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
The config file's text, as `meshsync install` ships it (YAML, ending in a newline). It runs the
default plugins, for which the RBAC here is computed (values.schema.json refuses config.plugins).
*/ -}}
{{- define "meshsync.configText" -}}
{{- printf "%s\n" (toYaml .Values.config) -}}
{{- end -}}

{{- /*
One legacy watch-list (dict "value" <string> "key" <whitelist|blacklist>) as JSON: a list of
{"resource": id, "all": bool}, "all" when the rule covers every event. The string is JSON, or JSON
holding the JSON text (Meshery's values quote it so); entries are {"Resource","Events"} with keys
matched case-insensitively, as Go's decoder does, or plain ids.
*/ -}}
{{- define "meshsync.rules" -}}
{{- $key := .key -}}
{{- $value := trim (toString .value) -}}
{{- $rules := list -}}
{{- if $value -}}
{{- $decoded := printf "{\"v\": %s}" $value | fromJson -}}
{{- if hasKey $decoded "Error" }}{{ fail (printf "watchConfig.%s: not valid JSON (%s); expected e.g. [{\"Resource\":\"pods.v1.\",\"Events\":[\"ADDED\"]}] or [\"pods.v1.\"]" $key $decoded.Error) }}{{ end -}}
{{- $list := $decoded.v -}}
{{- if and (kindIs "string" $list) (trim $list) -}}
{{- $again := printf "{\"v\": %s}" $list | fromJson -}}
{{- if hasKey $again "Error" }}{{ fail (printf "watchConfig.%s: the JSON string it holds is not valid JSON (%s)" $key $again.Error) }}{{ end -}}
{{- $list = $again.v -}}
{{- end -}}
{{- if and $list (not (kindIs "slice" $list)) }}{{ fail (printf "watchConfig.%s: expected a JSON list, got %s" $key (toJson $list)) }}{{ end -}}
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
{{- fail (printf "watchConfig.%s[%d]: not a resource id: %s (expected <plural>.<version>.<group>, e.g. pods.v1. (core group: trailing dot) or deployments.v1.apps; no patterns)" $key $i (toJson $entry)) -}}
{{- end -}}
{{- if and (not (kindIs "string" $events)) (or (not (kindIs "slice" $events)) (eq (len $events) 0)) -}}
{{- fail (printf "watchConfig.%s[%d]: Events must list at least one event, or be left out for all three" $key $i) -}}
{{- end -}}
{{- $rules = append $rules (dict "resource" $resource "all" (or (kindIs "string" $events) (eq (len $events) 3))) -}}
{{- end -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{- /*
The resource ids meshsync lists and watches, as `meshsync rbac` derives them (cli/install/command.ts
rbacOptionsFromConfig): a whitelist replaces the default resources; a blacklist rule covering every
event removes its resource.
*/ -}}
{{- define "meshsync.watchedResources" -}}
{{- $include := include "meshsync.rules" (dict "value" .Values.watchConfig.whitelist "key" "whitelist") | fromJsonArray -}}
{{- $exclude := include "meshsync.rules" (dict "value" .Values.watchConfig.blacklist "key" "blacklist") | fromJsonArray -}}
{{- $ids := list -}}
{{- if $include -}}
{{- range $include }}{{ $ids = append $ids .resource }}{{ end -}}
{{- else -}}
{{- $ids = include "meshsync.defaultResources" . | fromJsonArray -}}
{{- end -}}
{{- $excluded := list -}}
{{- range $exclude }}{{ if .all }}{{ $excluded = append $excluded .resource }}{{ end }}{{ end -}}
{{- $kept := list -}}
{{- range uniq $ids }}{{ if not (has . $excluded) }}{{ $kept = append $kept . }}{{ end }}{{ end -}}
{{- toJson $kept -}}
{{- end -}}

{{- /* list/watch rules, one per API group, as cli/install/rbac.ts watchRules: groups and resources sorted (a watch-list holds no patterns). */ -}}
{{- define "meshsync.watchRules" -}}
{{- $byGroup := dict -}}
{{- range include "meshsync.watchedResources" . | fromJsonArray -}}
{{- $parts := splitn "." 3 . -}}
{{- $_ := set $byGroup $parts._2 (append (get $byGroup $parts._2 | default list) $parts._0) -}}
{{- end -}}
{{- range $group := keys $byGroup | sortAlpha }}
- apiGroups: [{{ $group | quote }}]
  {{- $resources := get $byGroup $group | uniq | sortAlpha }}
  resources: {{ toJson $resources }}
  verbs: [list, watch]
{{- end -}}
{{- end -}}
