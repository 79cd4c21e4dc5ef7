{{- define "gingham.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gingham.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gingham.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gingham.etcdEnv" -}}
- name: ETCD_ENDPOINTS
  value: {{ .Values.etcd.endpoints | quote }}
{{- if .Values.etcd.tlsSecret }}
- name: ETCD_CA_CERT_FILE
  value: /etc/gingham/etcd/ca.crt
- name: ETCD_CERT_FILE
  value: /etc/gingham/etcd/tls.crt
- name: ETCD_KEY_FILE
  value: /etc/gingham/etcd/tls.key
{{- end }}
{{- end -}}
