FROM busybox
LABEL org.llbook.test=overridden new=1
MAINTAINER someone
LABEL maintainer=label
