<?php
/* English texts of install/unstep1.php. */
$MESS['ORDERBRIDGE_UNSTEP_WARN'] = 'orderbridge will be uninstalled: its event handlers, agent and status endpoint go, and the Bitrix24 deal property. The Roistat visit and UTM properties stay with the orders.';
$MESS['ORDERBRIDGE_UNSTEP_WAITING'] = '#COUNT# snapshots still wait in the queue to be sent to orderbridge.';
$MESS['ORDERBRIDGE_UNSTEP_SAVE'] = 'You can keep the settings and the queue, to install the module again later.';
$MESS['ORDERBRIDGE_UNSTEP_SAVE_DATA'] = 'Keep the settings and the queue';
$MESS['ORDERBRIDGE_UNSTEP_DELETE'] = 'Uninstall';
