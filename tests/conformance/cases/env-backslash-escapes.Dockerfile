FROM busybox
ENV A=a\\b B="a\"b" C=a\ \ b D="tab\tnone" F="\$\{not\}"
ENV G=é H="${A}\\${B}"
RUN printf '%s|' "$A" "$B" "$C" "$D" "$F" "$G" "$H" > /out
