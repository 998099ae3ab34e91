<?php
/*
 * Uninstall, step 1: what will go, how many snapshots still wait in the queue, and whether to
 * keep the settings and the queue (savedata=Y, the box Bitrix's own modules show). The form
 * goes back to the modules page with step=2, which runs DoUninstall's second step.
 */

use Bitrix\Main\Localization\Loc;

if (!check_bitrix_sessid()) {
	return;
}
Loc::loadMessages(__FILE__);

global $APPLICATION;
$waiting = null;
try {
	if (class_exists('\Orderbridge\Queue')) {
		$waiting = (new \Orderbridge\Queue())->count();
	}
} catch (\Throwable $e) {
	$waiting = null; // no table: nothing to keep
}
?>
<form action="<?= htmlspecialcharsbx($APPLICATION->GetCurPage()) ?>" method="post">
	<?= bitrix_sessid_post() ?>
	<input type="hidden" name="lang" value="<?= htmlspecialcharsbx(LANGUAGE_ID) ?>">
	<input type="hidden" name="id" value="orderbridge.connector">
	<input type="hidden" name="uninstall" value="Y">
	<input type="hidden" name="step" value="2">
	<?php CAdminMessage::ShowMessage(Loc::getMessage('ORDERBRIDGE_UNSTEP_WARN')); ?>
	<?php if ($waiting): ?>
	<p><?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_UNSTEP_WAITING', ['#COUNT#' => $waiting])) ?></p>
	<?php endif; ?>
	<p><?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_UNSTEP_SAVE')) ?></p>
	<p><input type="checkbox" name="savedata" id="savedata" value="Y" checked>
		<label for="savedata"><?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_UNSTEP_SAVE_DATA')) ?></label></p>
	<input type="submit" name="inst" value="<?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_UNSTEP_DELETE')) ?>">
</form>
