FROM busybox
RUN ln -s /etc /etclink && echo x > /f && mkdir -p /p/q && echo y > /p/q/y
RUN rm /etclink /f && rm -r /p/q
RUN echo again > /f && mkdir /p/q
