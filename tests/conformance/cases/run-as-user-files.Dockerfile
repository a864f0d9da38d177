FROM busybox
RUN mkdir /shared && chmod 777 /shared
USER app
RUN echo mine > /shared/mine && mkdir /shared/d
