FROM busybox
ENV A=1
ARG B=two
LABEL x=$A y=${B} z="${A}-${B}" w='$A'
