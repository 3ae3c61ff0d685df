{{- /*
The RBAC `meshsync rbac` computes, for the chart's config. What is granted for which plugin and
option is the table in _rbac-table.tpl, generated from cli/install/rbac.ts (RBAC_FACTS,
RBAC_GRANTS), the table rbacObjects applies; these helpers apply it the same way (README.md, RBAC).
*/ -}}

{{- /* The config's plugins as a JSON list of {name, options}: those it lists, or the in-cluster defaults. */ -}}
{{- define "meshsync.plugins" -}}
{{- $config := include "meshsync.config" . | fromJson -}}
{{- $entries := (include "meshsync.rbacTable" . | fromJson).inClusterPlugins -}}
{{- if hasKey $config "plugins" }}{{ $entries = $config.plugins | default list }}{{ end -}}
{{- $plugins := list -}}
{{- range $i, $entry := $entries -}}
{{- if kindIs "string" $entry -}}
{{- $plugins = append $plugins (dict "name" $entry "options" (dict)) -}}
{{- else if and (kindIs "slice" $entry) $entry (kindIs "string" (first $entry)) -}}
{{- $plugins = append $plugins (dict "name" (first $entry) "options" ((rest $entry | first) | default (dict))) -}}
{{- else -}}
{{- fail (printf "config.plugins[%d]: expected a plugin name or a [name, options] pair, got %s" $i (toJson $entry)) -}}
{{- end -}}
{{- end -}}
{{- toJson $plugins -}}
{{- end -}}

{{- /* The table's facts (leader election on, the CR's name, ...) for these plugins; more than one replica also elects a leader. */ -}}
{{- define "meshsync.facts" -}}
{{- $plugins := include "meshsync.plugins" . | fromJsonArray -}}
{{- $facts := dict -}}
{{- range $fact := (include "meshsync.rbacTable" . | fromJson).facts -}}
{{- $value := $fact.absent -}}
{{- range $plugins -}}
{{- if eq .name $fact.plugin -}}
{{- $value = $fact.listed -}}
{{- if and (hasKey $fact "option") (hasKey .options $fact.option) }}{{ $value = get .options $fact.option }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $facts $fact.fact $value -}}
{{- end -}}
{{- if gt (int .Values.replicas) 1 }}{{ $_ := set $facts "ha" true }}{{ end -}}
{{- toJson $facts -}}
{{- end -}}

{{- /*
The resource ids meshsync lists and watches, as `meshsync rbac` derives them (cli/install/command.ts
rbacOptionsFromConfig): the kubernetes plugin's resources (default: the table's), narrowed by the
watch-list plugin, whose rules are the meshery-meshsync-config ConfigMap's when the MeshSync
resource plugin reads it and it names any (plugins/meshsync-resource, Precedence), else its
options: a whitelist (include) replaces the resources; a blacklist (exclude) rule covering every
event removes its resource.
*/ -}}
{{- define "meshsync.watchedResources" -}}
{{- $plugins := include "meshsync.plugins" . | fromJsonArray -}}
{{- $facts := include "meshsync.facts" . | fromJson -}}
{{- $ids := (include "meshsync.rbacTable" . | fromJson).defaultResources -}}
{{- $w := .Values.watchConfig -}}
{{- $fromConfigMap := dict
  "include" (include "meshsync.rules" (dict "value" $w.whitelist "key" "watchConfig.whitelist") | fromJsonArray)
  "exclude" (include "meshsync.rules" (dict "value" $w.blacklist "key" "watchConfig.blacklist") | fromJsonArray) -}}
{{- $watchList := "" -}}
{{- range $i, $p := $plugins -}}
{{- if and (eq $p.name "meshsync:kubernetes") (hasKey $p.options "resources") -}}
{{- $ids = list -}}
{{- range $j, $r := $p.options.resources -}}
{{- $id := $r -}}
{{- if kindIs "map" $r }}{{ $id = $r.id }}{{ end -}}
{{- if not (and (kindIs "string" $id) (eq (len (splitList "." $id)) 3)) -}}
{{- fail (printf "config.plugins[%d] (meshsync:kubernetes) resources[%d]: not a resource id: %s (expected <plural>.<version>.<group>, core group empty: pods.v1.)" $i $j (toJson $r)) -}}
{{- end -}}
{{- $ids = append $ids $id -}}
{{- end -}}
{{- else if eq $p.name "meshsync:watch-list" -}}
{{- $at := printf "config.plugins[%d] (meshsync:watch-list)" $i -}}
{{- $rules := dict -}}
{{- range $name, $legacy := dict "include" "whitelist" "exclude" "blacklist" -}}
{{- $list := include "meshsync.rules" (dict "value" (get $p.options $name) "key" (printf "%s %s" $at $name)) | fromJsonArray -}}
{{- if not $list }}{{ $list = include "meshsync.rules" (dict "value" (get $p.options $legacy) "key" (printf "%s %s" $at $legacy)) | fromJsonArray }}{{ end -}}
{{- $_ := set $rules $name $list -}}
{{- end -}}
{{- $watchList = $rules -}}
{{- end -}}
{{- end -}}
{{- $readsConfigMap := and $facts.meshSyncResource (eq $facts.configMap (include "meshsync.watchConfigMap" .)) (has $facts.resourceNamespace (list "" .Release.Namespace)) -}}
{{- if and $watchList $readsConfigMap (or $fromConfigMap.include $fromConfigMap.exclude (trim (toString ($w.whitelist | default ""))) (trim (toString ($w.blacklist | default "")))) -}}
{{- $watchList = $fromConfigMap -}}
{{- end -}}
{{- if $watchList -}}
{{- if $watchList.include -}}
{{- $ids = list -}}
{{- range $watchList.include }}{{ $ids = append $ids .resource }}{{ end -}}
{{- end -}}
{{- $excluded := list -}}
{{- range $watchList.exclude }}{{ if .all }}{{ $excluded = append $excluded .resource }}{{ end }}{{ end -}}
{{- $kept := list -}}
{{- range $ids }}{{ if not (has . $excluded) }}{{ $kept = append $kept . }}{{ end }}{{ end -}}
{{- $ids = $kept -}}
{{- end -}}
{{- toJson (uniq $ids) -}}
{{- end -}}

{{- /* list/watch rules for (dict "ids" <resource ids> "verbs" <verbs>), as rbac.ts watchRules: one per API group, sorted; a pattern's `*` is kept. */ -}}
{{- define "meshsync.watchRules" -}}
{{- $byGroup := dict -}}
{{- range .ids -}}
{{- $parts := splitn "." 3 . -}}
{{- $_ := set $byGroup $parts._2 (append (get $byGroup $parts._2 | default list) $parts._0) -}}
{{- end -}}
{{- $rules := list -}}
{{- range $group := keys $byGroup | sortAlpha -}}
{{- $resources := get $byGroup $group | uniq | sortAlpha -}}
{{- if has "*" $resources }}{{ $resources = list "*" }}{{ end -}}
{{- $rules = append $rules (dict "apiGroups" (list $group) "resources" $resources "verbs" $.verbs) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{- /* The table's grants of (dict "scope" <scope> "facts" <facts> "table" <table>), `$fact`s replaced, as rbac.ts grantedRules. */ -}}
{{- define "meshsync.grants" -}}
{{- $facts := .facts -}}
{{- $rules := list -}}
{{- range .table.grants -}}
{{- $holds := eq .scope $.scope -}}
{{- range .when -}}
{{- if hasPrefix "!" . }}{{ if get $facts (trimPrefix "!" .) }}{{ $holds = false }}{{ end }}{{ else if not (get $facts .) }}{{ $holds = false }}{{ end -}}
{{- end -}}
{{- if $holds -}}
{{- $rule := dict -}}
{{- range $field, $values := .rule -}}
{{- $filled := list -}}
{{- range $values }}{{ $filled = append $filled (ternary (toString (get $facts (trimPrefix "$" .))) . (hasPrefix "$" .)) }}{{ end -}}
{{- $_ := set $rule $field $filled -}}
{{- end -}}
{{- $rules = append $rules $rule -}}
{{- end -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{- /*
The rules of each RBAC object, as rbac.ts rbacObjects: {cluster, own, resourceNamespace, resource,
watchNamespaces, watch}. With namespaces.include, namespaced resources get a Role in each of them
and only cluster-scoped ones (and patterns, which may match some) stay in the ClusterRole.
*/ -}}
{{- define "meshsync.rbac" -}}
{{- $table := include "meshsync.rbacTable" . | fromJson -}}
{{- $facts := include "meshsync.facts" . | fromJson -}}
{{- $ids := include "meshsync.watchedResources" . | fromJsonArray -}}
{{- $namespaces := list -}}
{{- range include "meshsync.plugins" . | fromJsonArray -}}
{{- if eq .name "meshsync:kubernetes" }}{{ $namespaces = ((.options.namespaces | default (dict)).include | default list) | uniq | sortAlpha }}{{ end -}}
{{- end -}}
{{- $clusterWide := $ids -}}
{{- $perNamespace := list -}}
{{- if $namespaces -}}
{{- $clusterWide = list -}}
{{- range $ids -}}
{{- $parts := splitList "." . -}}
{{- if or (has "*" $parts) (has (printf "%s.%s" (first $parts) (splitn "." 3 .)._2) $table.clusterScoped) -}}
{{- $clusterWide = append $clusterWide . -}}
{{- else -}}
{{- $perNamespace = append $perNamespace . -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $grants := dict "facts" $facts "table" $table -}}
{{- $cluster := concat (include "meshsync.watchRules" (dict "ids" $clusterWide "verbs" $table.watchVerbs) | fromJsonArray) (include "meshsync.grants" (merge (dict "scope" "cluster") $grants) | fromJsonArray) -}}
{{- $resource := include "meshsync.grants" (merge (dict "scope" "resource") $grants) | fromJsonArray -}}
{{- $resourceNamespace := $facts.resourceNamespace | default .Release.Namespace -}}
{{- $own := include "meshsync.grants" (merge (dict "scope" "own") $grants) | fromJsonArray -}}
{{- if eq $resourceNamespace .Release.Namespace }}{{ $own = concat $resource $own }}{{ $resource = list }}{{ end -}}
{{- $watch := list -}}
{{- if $perNamespace }}{{ $watch = include "meshsync.watchRules" (dict "ids" $perNamespace "verbs" $table.watchVerbs) | fromJsonArray }}{{ end -}}
{{- toJson (dict "cluster" $cluster "own" $own "resourceNamespace" $resourceNamespace "resource" $resource "watchNamespaces" (ternary $namespaces (list) (gt (len $watch) 0)) "watch" $watch) -}}
{{- end -}}
